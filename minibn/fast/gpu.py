"""The flat layout's convolution and BatchNorm for the GPU: few CuPy calls, since each call is what costs.

On a GPU a ResNet-20 step at batch 128 is a fraction of a millisecond of arithmetic, and every CuPy call
costs the host 10-30 us whatever its size (minibn/opcount.py counts them). The textbook ops make about 12
calls per conv forward (a pad, nine strided copies, the GEMM, a transpose), 20 per conv backward (col2im)
and 17 per BatchNorm forward. On the flat layout of layout.py (each channel one row of the whole
batch, a zero after each image row and a zero row after each image), without chunks or threads:

- conv forward: the columns are one strided copy (a view made with as_strided: each kernel offset is a
  shift along the row) into a scratch matrix, then one GEMM. The scratch's columns at the pads are never
  written, so they stay zero, and so the GEMM's output has zero pads with no further call.
- conv input gradient: the same gather of the output gradient with the kernel flipped, and one GEMM: no
  col2im. A stride-2 conv first spreads its output gradient onto the input's grid (one copy into another
  scratch whose other positions stay zero), which makes its backward a stride-1 one.
- BatchNorm (+ residual) (+ ReLU): channel sums are matrix-vector products with the pixel mask, so pads
  drop out; the last call, a clip to [0, inf] at pixels and [0, 0] at pads, is the ReLU and zeroes the pads.

The textbook twins and test oracles are conv.Conv2d and batchnorm.BatchNorm (+ ops.Add, ops.ReLU);
tests/test_fast_gpu.py compares them in float64. The ops are plain ``xp`` code: the tests also run them on
NumPy.
minibn/fast/__init__.py picks them for CuPy arrays (the ``fast_gpu`` switch, on by default).
"""
from __future__ import annotations

import contextlib

import numpy as np

from minibn.autograd import Context
from minibn.backend import array_module
from minibn.conv import conv_output_size
from minibn.fast import running_stats
from minibn.fast.layout import FlatFunction, FlatLayout, conv_window, keep
from minibn.tensor import Tensor

# Scratch matrices and masks, by what they are for and their shape. What is kept between training steps is
# bounded: per conv shape one column matrix each way (C*k*k rows, forward and input gradient) and one
# spread matrix, per layout a mask and two clip bounds; for a ResNet-20 at batch 128 about 590 MiB
# (lessons/guide/speed.md, "Device memory"). Shapes seen once (an evaluation's batch) are given back when
# that ends: one_off_shapes().
_kept: dict[tuple, object] = {}


def _keep(key: tuple, make):
    """An array made once by ``make()`` and kept, e.g. a scratch matrix whose pad columns stay zero."""
    if key not in _kept:
        _kept[key] = make()
    return _kept[key]


def release() -> None:
    """Forget the kept arrays (their memory goes back to the pool once no op uses them)."""
    _kept.clear()


def kept_bytes() -> int:
    """Device bytes of the kept arrays."""
    return sum(array.nbytes for array in _kept.values())


@contextlib.contextmanager
def one_off_shapes():
    """Arrays kept for shapes first seen inside the block (an evaluation's batch) are forgotten when it ends;
    those kept before it (the training shapes) stay."""
    before = set(_kept)
    try:
        yield
    finally:
        for key in set(_kept) - before:
            del _kept[key]


def _zeros(xp, what: str, rows: int, layout: FlatLayout, dtype):
    """A kept (rows, length) scratch matrix, zero where no gather of ``what`` ever writes."""
    return _keep((xp.__name__, what, rows, layout, np.dtype(dtype).str),
                 lambda: xp.zeros((rows, layout.length), dtype))


def pixel_mask(xp, layout: FlatLayout, dtype, scale: float = 1.0):
    """(length,): ``scale`` at the real pixels, 0 at pads and margins."""
    def make():
        mask = np.zeros((1, layout.length))
        layout.pixels(mask)[...] = scale
        return xp.asarray(mask[0], dtype=dtype)
    return _keep((xp.__name__, "mask", scale, layout, np.dtype(dtype).str), make)


def clip_bounds(xp, layout: FlatLayout, dtype):
    """(low, high), each (length,): -inf and inf at the pixels, 0 at pads and margins."""
    def make(sign):
        bound = np.zeros((1, layout.length))
        layout.pixels(bound)[...] = sign * np.inf
        return xp.asarray(bound[0], dtype=dtype)
    key = (xp.__name__, layout, np.dtype(dtype).str)
    return _keep(("low",) + key, lambda: make(-1)), _keep(("high",) + key, lambda: make(1))


@contextlib.contextmanager
def float32_sums(xp):
    """Float32 matrix products inside the block even where CuPy computes them in TF32 (CUPY_TF32=1, what
    `bench --math tf32` sets): BatchNorm's channel sums are matrix-vector products here, and PyTorch's BatchNorm
    sums in FP32 whatever its TF32 switches. CuPy's compute type is a host setting: no device call, no sync."""
    linalg = getattr(getattr(xp, "_core", None), "_routines_linalg", None)
    if linalg is None:  # NumPy, or a CuPy without the setting
        yield
        return
    was = linalg.get_compute_type(np.float32)
    linalg.set_compute_type(np.float32, linalg.COMPUTE_TYPE_FP32)
    try:
        yield
    finally:
        linalg.set_compute_type(np.float32, was)


def gather(source, layout: FlatLayout, out_layout: FlatLayout, k: int, stride: int, what: str = "cols"):
    """The im2col matrix of a k x k conv, padding k // 2, in one strided copy: (C*k*k, out length).

    Column q, an output pixel (n, y, x), holds source[c, n, stride*y + i - p, stride*x + j - p] in row
    (c, i, j); rows ordered as weight.reshape(O, -1). Columns at output pads and margins are zero.
    """
    xp = array_module(source)
    source = xp.ascontiguousarray(source)  # a view of it is made from its strides (no call if it already is)
    channels = source.shape[0]
    shape = (channels, k, k, out_layout.n, out_layout.h, out_layout.w)
    window = conv_window(source, layout, 0, out_layout.n, k, stride, k // 2, (out_layout.h, out_layout.w))
    cols = _zeros(xp, what, channels * k * k, out_layout, source.dtype)
    out_layout.pixels(cols).reshape(shape)[...] = window.transpose(2, 0, 1, 3, 4, 5)  # rows (c, i, j)
    return cols


def spread(g, out_layout: FlatLayout, layout: FlatLayout, stride: int):
    """(O, out length) -> (O, length) on the input's grid: g's pixel (n, y, x) at (n, stride*y, stride*x),
    zeros elsewhere. A strided conv's input gradient is then a stride-1 correlation of this."""
    xp = array_module(g)
    spread_out = _zeros(xp, f"spread{stride}", g.shape[0], layout, g.dtype)
    h, w = stride * out_layout.h, stride * out_layout.w
    layout.grid(spread_out)[:, :, 0:h:stride, 0:w:stride] = out_layout.pixels(g)
    return spread_out


def has_gpu_version(weight_shape, bias, stride: int, padding: int) -> bool:
    """Square kernel of size 1 or 3, padding k // 2 (the flat layout's pads are one pixel), no bias."""
    k = weight_shape[2]
    return bias is None and weight_shape[3] == k and k in (1, 3) and padding == k // 2 and stride >= 1


class ConvFlatGPU(FlatFunction):
    """k x k conv (k = 1 or 3, padding k // 2, any stride) on the flat layout: x (C, L) -> out (O, L_out).

    With cols = gather(x) (C*k*k, L_out), g = dL/dout (O, L_out), as in minibn/conv.py:
      forward   out = W_mat @ cols                                     a gather and a GEMM
      d x       dx  = W_flip @ gather(g spread onto x's grid)           the same, kernel flipped and transposed
      d weight  dW  = g @ cols^T  (cols gathered again; only if the weight trains)
    A 1x1 stride-1 conv needs no gather: out = W_mat @ x, dx = W_mat^T @ g.
    """

    @staticmethod
    def forward(ctx: Context, x, weight, layout: FlatLayout, out_layout: FlatLayout, stride: int):
        ctx.save_for_backward(x if ctx.needs_input_grad[1] else None, weight)
        ctx.geometry = layout, out_layout, stride
        w_mat, k = weight.reshape(weight.shape[0], -1), weight.shape[2]
        return w_mat @ (x if k == 1 and stride == 1 else gather(x, layout, out_layout, k, stride))

    @staticmethod
    def backward(ctx: Context, g):
        x, weight = ctx.saved
        layout, out_layout, stride = ctx.geometry
        xp = array_module(g)
        o, c, k = weight.shape[:3]
        dx = dw = None
        if ctx.needs_input_grad[0]:
            g_in = g if stride == 1 else spread(g, out_layout, layout, stride)   # (O, L)
            if k == 1:
                dx = weight.reshape(o, c).T @ g_in
            else:  # W_flip[c, (o, i, j)] = W[o, c, k-1-i, k-1-j]
                w_flip = xp.ascontiguousarray(weight[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)).reshape(c, -1)
                dx = w_flip @ gather(g_in, layout, layout, k, 1, what="dcols")
        if ctx.needs_input_grad[1]:
            cols = x if k == 1 and stride == 1 else gather(x, layout, out_layout, k, stride)
            into = ctx.grad_destination(1)  # the optimizer's packed gradient, if any (Context.grad_destination)
            dw = xp.matmul(g, cols.T, out=None if into is None else into.reshape(o, -1))
            dw = into if into is not None else dw.reshape(weight.shape)
        return dx, dw


class BatchNormFlatGPU(FlatFunction):
    """BatchNorm (+ residual) (+ ReLU) on flat (C, L) activations, pads zero in and out: batchnorm.BatchNorm's
    formulas (derived in its docstring), line by line, with channel sums as products with a pixel mask.

    forward   mean = x @ w, var = (x - mean)^2 @ w     w = 1/M at the pixels, 0 at the pads (M pixels)
              xhat = (x - mean) s,  s = 1 / sqrt(var + eps)
              y = clip(gamma xhat + beta + residual, low, high)   low = 0 with the ReLU (else -inf at the
                                                                  pixels), high = inf at pixels; 0 at pads
    backward  ge = g [y > 0]  (the ReLU's gradient; also the residual's)
              dbeta = ge @ mask,  dgamma = (ge xhat) @ mask         (mask: 1 at the pixels, 0 at the pads)
              dx = gamma s (ge - xhat dgamma / M - dbeta / M) mask   (batchnorm.py's formula; eval: gamma s ge)
    Every product with a per-channel vector broadcasts it along the row: one call each.
    """

    @staticmethod
    def forward(ctx: Context, x, gamma, beta, residual=None, *, layout: FlatLayout, running_mean, running_var,
                training: bool, momentum: float, eps: float, relu: bool):
        xp, m = array_module(x), layout.pixels_per_channel
        if training:
            weights = pixel_mask(xp, layout, x.dtype, 1 / m)
            with float32_sums(xp):
                mean = x @ weights
                xhat = x - mean[:, None]                   # centered for now; normalized in place below
                var = (xhat * xhat) @ weights
            running_stats.update(running_mean, running_var, mean, var, m, momentum)  # batchnorm.py's, or stacked
        else:
            mean, var = running_mean, running_var
            xhat = x - mean[:, None]
        inv_std = (var + eps) ** -0.5
        xhat *= inv_std[:, None]
        y = xhat * gamma[:, None]
        y += beta[:, None]
        if residual is not None:
            y += residual
        low, high = clip_bounds(xp, layout, x.dtype)
        xp.clip(y, 0 if relu else low, high, out=y)  # the ReLU (or none), and zeros at the pads
        ctx.save_for_backward(xhat, y if relu else None, inv_std, gamma)
        ctx.layout, ctx.training, ctx.has_residual = layout, training, residual is not None
        return y

    @staticmethod
    def backward(ctx: Context, g):
        xhat, y, inv_std, gamma = ctx.saved
        xp, layout = array_module(g), ctx.layout
        m = layout.pixels_per_channel
        mask = pixel_mask(xp, layout, g.dtype)
        ge = g if y is None else g * (y > 0)  # zero at the pads, as y is
        with float32_sums(xp):
            dbeta = xp.matmul(ge, mask, out=ctx.grad_destination(2))  # see Context.grad_destination
            dgamma = xp.matmul(ge * xhat, mask, out=ctx.grad_destination(1))
        dx = None
        if ctx.needs_input_grad[0]:
            scale = (gamma * inv_std)[:, None]
            if ctx.training:
                dx = xhat * (dgamma * (1 / m))[:, None]
                dx += (dbeta * (1 / m))[:, None]
                dx = ge - dx
                dx *= scale
                dx *= mask  # xhat and dbeta / M are not 0 at the pads
            else:
                dx = ge * scale
        needs_gamma, needs_beta = ctx.needs_input_grad[1:3]
        return (dx, dgamma if needs_gamma else None, dbeta if needs_beta else None,
                *((ge,) if ctx.has_residual else ()))


def conv2d(x: Tensor, weight: Tensor, stride: int) -> Tensor:
    """conv2d (no bias, padding k // 2) of ``x`` in the flat layout; the output is in the flat layout of its size."""
    layout, k = x.layout, weight.shape[2]
    out_layout = layout if stride == 1 else FlatLayout(
        layout.n, *(conv_output_size(size, k, stride, k // 2) for size in (layout.h, layout.w)))
    return keep(ConvFlatGPU.apply(x, weight, layout=layout, out_layout=out_layout, stride=stride), out_layout)
