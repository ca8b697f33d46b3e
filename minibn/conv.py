"""2-D convolution as im2col + one matrix multiply, and its backward through col2im.

Layout: x (N, C, H, W), weight (O, C, kh, kw), out (N, O, Ho, Wo) with
Ho = (H + 2 padding - kh) // stride + 1 (and Wo likewise).

im2col copies, for every kernel offset (i, j), the input pixels that offset
touches into an array ``cols`` of shape (C, kh, kw, N, Ho, Wo), which reshapes
without a copy to a matrix (C*kh*kw, N*Ho*Wo). Then the whole convolution is one
GEMM: out = W (O, C*kh*kw) @ cols. Both im2col and col2im
loop over the kh*kw offsets with strided slices, so each step is one big array
copy (or add) on NumPy and CuPy alike, with no scatter.
"""
from __future__ import annotations

import numpy as np

from minibn.backend import array_module
from minibn.tensor import Context, Function, Tensor


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def im2col(x, kh: int, kw: int, stride: int, padding: int):
    """x (N, C, H, W) -> cols (C, kh, kw, N, Ho, Wo) with cols[c, i, j, n, y, x] = xpad[n, c, y*s+i, x*s+j]."""
    xp = array_module(x)
    n, c, h, w = x.shape
    ho, wo = conv_output_size(h, kh, stride, padding), conv_output_size(w, kw, stride, padding)
    x_cn = x.transpose(1, 0, 2, 3)  # a view (C, N, H, W): the copies below write cols in order
    if padding:
        x_cn = xp.pad(x_cn, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    cols = xp.empty((c, kh, kw, n, ho, wo), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, i, j] = x_cn[:, :, i:i + stride * ho:stride, j:j + stride * wo:stride]
    return cols


def col2im(cols, x_shape, stride: int, padding: int):
    """cols (C, kh, kw, N, Ho, Wo) -> dx (N, C, H, W): each patch entry added back where im2col took it."""
    xp = array_module(cols)
    c, kh, kw, n, ho, wo = cols.shape
    _, _, h, w = x_shape
    dx = xp.zeros((c, n, h + 2 * padding, w + 2 * padding), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            dx[:, :, i:i + stride * ho:stride, j:j + stride * wo:stride] += cols[:, i, j]
    return xp.ascontiguousarray(dx[:, :, padding:padding + h, padding:padding + w].transpose(1, 0, 2, 3))


class Conv2d(Function):
    """out = conv(x, weight) + bias.  x (N,C,H,W), weight (O,C,kh,kw), bias (O,) -> out (N,O,Ho,Wo).

    With cols = im2col(x) as (C*kh*kw, N*Ho*Wo) and g = dL/dout as (O, N*Ho*Wo):
      forward      out   = W @ cols                      (one GEMM)
      d weight     dW    = g @ cols^T                    (GEMM, only if the weight trains)
      d x          dx    = col2im(W^T @ g)               (GEMM, then add patches back)
      d bias       db    = g summed over N, Ho, Wo

    ``to_cols`` and ``from_cols`` are im2col and col2im; kernels.Conv2dKernels passes its one-launch twins.
    """

    @staticmethod
    def forward(ctx: Context, x, weight, bias=None, stride=1, padding=0, to_cols=im2col):
        xp = array_module(x)
        n, c, h, w = x.shape
        o, c_w, kh, kw = weight.shape
        if c != c_w:
            raise ValueError(f"conv2d: input has {c} channels but the weight expects {c_w}")
        cols = to_cols(x, kh, kw, stride, padding)
        ho, wo = cols.shape[-2:]
        out = weight.reshape(o, -1) @ cols.reshape(c * kh * kw, -1)         # (O, N*Ho*Wo)
        out = xp.ascontiguousarray(out.reshape(o, n, ho, wo).transpose(1, 0, 2, 3))
        if bias is not None:
            out += bias.reshape(1, o, 1, 1)
        needs_x, needs_w = ctx.needs_input_grad[:2]
        ctx.save_for_backward(cols if needs_w else None, weight if needs_x else None)
        ctx.x_shape, ctx.stride, ctx.padding = x.shape, stride, padding
        return out

    @staticmethod
    def backward(ctx: Context, g, from_cols=col2im):
        cols, weight = ctx.saved
        o = g.shape[1]
        g_mat = g.transpose(1, 0, 2, 3).reshape(o, -1)                         # (O, N*Ho*Wo)
        dx = dw = db = None
        if ctx.needs_input_grad[0]:
            dcols = weight.reshape(o, -1).T @ g_mat                             # (C*kh*kw, N*Ho*Wo)
            c, kh, kw = weight.shape[1:]
            n, ho, wo = g.shape[0], g.shape[2], g.shape[3]
            dx = from_cols(dcols.reshape(c, kh, kw, n, ho, wo), ctx.x_shape, ctx.stride, ctx.padding)
        if ctx.needs_input_grad[1]:
            c_kk = cols.shape[0] * cols.shape[1] * cols.shape[2]
            dw = (g_mat @ cols.reshape(c_kk, -1).T).reshape(o, *cols.shape[:3])
        if len(ctx.needs_input_grad) > 2 and ctx.needs_input_grad[2]:
            db = g.sum(axis=(0, 2, 3))
        return dx, dw, db


def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: int = 1, padding: int = 0) -> Tensor:
    """2-D cross-correlation (PyTorch's conv2d) of NCHW ``x`` with ``weight`` (O, C, kh, kw): the textbook
    op. Layers call F.conv2d, which runs this op or a fast version of it (minibn/registry.py)."""
    if bias is None:
        return Conv2d.apply(x, weight, stride=stride, padding=padding)
    return Conv2d.apply(x, weight, bias, stride=stride, padding=padding)


def conv2d_naive(x: np.ndarray, weight: np.ndarray, bias=None, stride: int = 1, padding: int = 0) -> np.ndarray:
    """The definition, one output pixel at a time: the test oracle for conv2d (slow, NumPy only)."""
    n, c, h, w = x.shape
    o, _, kh, kw = weight.shape
    ho, wo = conv_output_size(h, kh, stride, padding), conv_output_size(w, kw, stride, padding)
    xpad = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    out = np.zeros((n, o, ho, wo), dtype=np.result_type(x, weight))
    for y in range(ho):
        for x_ in range(wo):
            patch = xpad[:, :, y * stride:y * stride + kh, x_ * stride:x_ * stride + kw]  # (N, C, kh, kw)
            out[:, :, y, x_] = np.tensordot(patch, weight, axes=([1, 2, 3], [1, 2, 3]))  # (N, O)
    if bias is not None:
        out += np.asarray(bias).reshape(1, o, 1, 1)
    return out
