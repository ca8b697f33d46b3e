"""Hand-written CuPy kernels for the GPU hot spots.

Every op here has a plain ``xp`` twin, its test oracle: Conv2dKernels is conv.Conv2d with
im2col/col2im as one launch each, BatchNormKernels is batchnorm.BatchNorm in training mode,
CrossEntropyKernels is functional.CrossEntropy, sgd_update is optim.sgd_update; and
tests/test_kernels.py checks on a GPU that both give the same numbers. minibn/fast/__init__.py picks them
for CuPy arrays while the kernels are on: ``minibn.fast.use(kernels=True)``, MINIBN_KERNELS=1, or ``--kernels``.

Why these: the plain paths launch many small kernels (im2col alone is a pad and nine
slice copies; BatchNorm's backward is about eight), and at CIFAR sizes a GPU step is
bound by launches, not arithmetic. Each kernel below replaces such a group by one.
The kernels are compiled by CuPy on first use and cached.
"""
from __future__ import annotations

import functools

from minibn.autograd import Context
from minibn.batchnorm import BatchNorm
from minibn.conv import Conv2d, conv_output_size
from minibn.fast import running_stats
from minibn.functional import CrossEntropy

__all__ = ["Conv2dKernels", "BatchNormKernels", "CrossEntropyKernels", "sgd_update", "im2col", "col2im"]


@functools.cache
def _compiled() -> dict:
    """Build the kernels once, by name (CuPy compiles each lazily at its first launch)."""
    return {**_conv_kernels(), **_batchnorm_kernels(), **_cross_entropy_and_sgd_kernels()}


def _conv_kernels() -> dict:
    """im2col and col2im, one thread per output element (a column entry, an input pixel)."""
    import cupy

    im2col = cupy.ElementwiseKernel(
        "raw T x, int32 C, int32 H, int32 W, int32 KH, int32 KW, int32 N, int32 HO, int32 WO, int32 S, int32 P",
        "T col",
        """
        // col has shape (C, KH, KW, N, HO, WO); unravel i into those indices
        int wo = i % WO; long long t = i / WO;
        int ho = t % HO; t /= HO;
        int n = t % N;   t /= N;
        int kj = t % KW; t /= KW;
        int ki = t % KH; int c = t / KH;
        int y = ho * S - P + ki, xx = wo * S - P + kj;
        col = (y >= 0 && y < H && xx >= 0 && xx < W) ? x[((long long)(n * C + c) * H + y) * W + xx] : (T)0;
        """,
        "minibn_im2col")

    col2im = cupy.ElementwiseKernel(
        "raw T col, int32 C, int32 H, int32 W, int32 KH, int32 KW, int32 N, int32 HO, int32 WO, int32 S, int32 P",
        "T dx",
        """
        // dx has shape (N, C, H, W): gather, for this pixel, every column entry im2col copied it to
        int xx = i % W; long long t = i / W;
        int y = t % H; t /= H;
        int c = t % C; int n = t / C;
        T total = 0;
        for (int ki = 0; ki < KH; ki++) {
            int yy = y + P - ki;
            if (yy < 0 || yy % S != 0 || yy / S >= HO) continue;
            for (int kj = 0; kj < KW; kj++) {
                int xw = xx + P - kj;
                if (xw < 0 || xw % S != 0 || xw / S >= WO) continue;
                total += col[((((long long)(c * KH + ki) * KW + kj) * N + n) * HO + yy / S) * WO + xw / S];
            }
        }
        dx = total;
        """,
        "minibn_col2im")
    return {"im2col": im2col, "col2im": col2im}


def _batchnorm_kernels() -> dict:
    """BatchNormKernels' launches: the variance, the normalization, dgamma's sum and the input gradient."""
    import cupy

    bn_forward = cupy.ElementwiseKernel(
        "T x, T mean, T inv_std, T gamma, T beta", "T xhat, T y",
        "xhat = (x - mean) * inv_std; y = xhat * gamma + beta;",
        "minibn_bn_forward")

    sum_of_products = cupy.ReductionKernel(
        "T u, T v", "T out", "u * v", "a + b", "out = a", "0", "minibn_sum_of_products")

    sum_of_squared_deviations = cupy.ReductionKernel(  # the mean broadcasts: (1, C, 1, 1) against x
        "T x, T mean", "T out", "(x - mean) * (x - mean)", "a + b", "out = a", "0", "minibn_sum_of_squared_deviations")

    bn_backward_x = cupy.ElementwiseKernel(
        "T g, T xhat, T scale, T beta_term, T gamma_term", "T dx",
        "dx = scale * (g - beta_term - xhat * gamma_term);",
        "minibn_bn_backward_x")
    return {"bn_forward": bn_forward, "sum_of_products": sum_of_products,
            "sum_of_squared_deviations": sum_of_squared_deviations, "bn_backward_x": bn_backward_x}


def _cross_entropy_and_sgd_kernels() -> dict:
    """CrossEntropyKernels' backward and sgd_update, one launch each."""
    import cupy

    cross_entropy_backward = cupy.ElementwiseKernel(  # invalid: NaN for a row whose label is outside [0, K)
        "T log_prob, raw int64 labels, int32 K, raw T scale, raw T invalid", "T dlogit",
        "dlogit = (exp(log_prob) - (i % K == labels[i / K] ? (T)1 : (T)0) + invalid[i / K]) * scale[0];",
        "minibn_cross_entropy_backward")

    sgd = cupy.ElementwiseKernel(
        "T grad, T mask, T lr, T weight_decay, T momentum, bool first", "T param, T buf",
        """
        // each product is cast back to T: for float16, CuPy's float16 * float16 is a float, and a ?: of a
        // float16 and a float does not compile (tests/test_nvrtc.py compiles this for every dtype)
        T d = (T)((grad + (T)(weight_decay * param)) * mask);
        buf = first ? d : (T)((T)(momentum * buf) + d);
        param -= (T)(lr * buf);
        """,
        "minibn_sgd")
    return {"cross_entropy_backward": cross_entropy_backward, "sgd": sgd}


def im2col(x, kh: int, kw: int, stride: int, padding: int):
    """Twin of conv.im2col: x (N, C, H, W) -> cols (C, kh, kw, N, Ho, Wo), in one launch."""
    import cupy
    n, c, h, w = x.shape
    ho, wo = conv_output_size(h, kh, stride, padding), conv_output_size(w, kw, stride, padding)
    cols = cupy.empty((c, kh, kw, n, ho, wo), dtype=x.dtype)
    _compiled()["im2col"](cupy.ascontiguousarray(x), c, h, w, kh, kw, n, ho, wo, stride, padding, cols)
    return cols


def col2im(cols, x_shape, stride: int, padding: int):
    """Twin of conv.col2im: cols (C, kh, kw, N, Ho, Wo) -> dx (N, C, H, W), in one launch, no atomics."""
    import cupy
    c, kh, kw, n, ho, wo = cols.shape
    _, _, h, w = x_shape
    dx = cupy.empty((n, c, h, w), dtype=cols.dtype)
    _compiled()["col2im"](cupy.ascontiguousarray(cols), c, h, w, kh, kw, n, ho, wo, stride, padding, dx)
    return dx


class Conv2dKernels(Conv2d):
    """conv.Conv2d (its twin and oracle) with im2col and col2im as one launch each."""

    @staticmethod
    def forward(ctx: Context, x, weight, bias=None, stride=1, padding=0):
        return Conv2d.forward(ctx, x, weight, bias, stride, padding, to_cols=im2col)

    @staticmethod
    def backward(ctx: Context, g):
        return Conv2d.backward(ctx, g, from_cols=col2im)


class BatchNormKernels(BatchNorm):
    """batchnorm.BatchNorm (its twin and oracle) in training mode on NCHW: the variance, the normalization
    and the input gradient each one launch. minibn/fast/__init__.py picks it for training-mode (N, C, H, W) input only.

    x, g (N, C, H, W); gamma, beta, mean, var, s = 1/sqrt(var + eps) (C,); sums over the M = N*H*W values of a channel:
      forward   var = sum((x - mean)^2) / M        xhat = (x - mean) s,  y = gamma xhat + beta    (two launches)
      backward  dbeta = sum(g),  dgamma = sum(g xhat),  dx = gamma s (g - dbeta/M - xhat dgamma/M)  (one launch)
    the formulas batchnorm.BatchNorm's docstring derives; running statistics through running_stats.update."""

    @staticmethod
    def forward(ctx: Context, x, gamma, beta, running_mean, running_var, training=True, momentum=0.1, eps=1e-5):
        import cupy
        c = x.shape[1]
        shape, m = (1, c, 1, 1), x.size // c
        mean = x.mean(axis=(0, 2, 3))
        var = _compiled()["sum_of_squared_deviations"](x, mean.reshape(shape), axis=(0, 2, 3)) / m
        inv_std = 1 / cupy.sqrt(var + eps)
        xhat, y = _compiled()["bn_forward"](x, mean.reshape(shape), inv_std.reshape(shape), gamma.reshape(shape),
                                            beta.reshape(shape))
        running_stats.update(running_mean, running_var, mean, var, m, momentum)
        ctx.save_for_backward(xhat, inv_std, gamma)
        ctx.training, ctx.axes, ctx.shape, ctx.m = True, (0, 2, 3), shape, m
        return y

    @staticmethod
    def backward(ctx: Context, g):
        xhat, inv_std, gamma = ctx.saved
        needs_x, needs_gamma, needs_beta = ctx.needs_input_grad[:3]
        shape, m = ctx.shape, ctx.m
        dbeta = g.sum(axis=(0, 2, 3))
        dgamma = _compiled()["sum_of_products"](g, xhat, axis=(0, 2, 3))
        dx = None
        if needs_x:
            dx = _compiled()["bn_backward_x"](g, xhat, (gamma * inv_std).reshape(shape), (dbeta / m).reshape(shape),
                                              (dgamma / m).reshape(shape))
        return dx, (dgamma if needs_gamma else None), (dbeta if needs_beta else None)


class CrossEntropyKernels(CrossEntropy):
    """functional.CrossEntropy (its twin and oracle) with the backward, (softmax - onehot) * g / N, in one launch."""

    @staticmethod
    def backward(ctx: Context, g):
        log_probs, labels, invalid = ctx.saved
        n, k = log_probs.shape
        scale = (g / n).reshape(1).astype(log_probs.dtype)
        return _compiled()["cross_entropy_backward"](log_probs, labels, k, scale, invalid)


def sgd_update(param, grad, mask, buffer, first: bool, lr: float, momentum: float, weight_decay: float) -> None:
    """Twin of optim.sgd_update (with momentum): decay, mask, momentum and the step in one launch. SGD calls
    it once per parameter, PackedSGD once per pack, so that one launch updates every trainable parameter."""
    scalar = param.dtype.type
    mask = mask if mask is not None else scalar(1)  # a scalar argument: no array to allocate
    _compiled()["sgd"](grad, mask, scalar(lr), scalar(weight_decay), scalar(momentum), first, param, buffer)
