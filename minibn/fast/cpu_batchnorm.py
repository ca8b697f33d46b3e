"""BatchNorm, with the ReLU and the residual add that follow it fused in, on the flat layout.

The textbook op (minibn/batchnorm.py) keeps xhat and makes about a dozen full passes over the
activations for BN, ReLU and the add. Here one op does all three with per-channel coefficients:

    forward    y = relu(a * x + b + residual)      a = gamma s,  b = beta - a mean,  s = 1 / sqrt(var + eps)
    backward   ge = g * [y > 0]                    (the ReLU's gradient; it is also d residual)
               dbeta  = sum(ge)                    dgamma = s * sum(ge * (x - mean))
               dx = k1 * ge + k2 * x + k3          k1 = gamma s,  k2 = -gamma s^2 dgamma / M,
                                                   k3 = -gamma s dbeta / M - k2 mean

which is batchnorm.py's dx = gamma s / M (M g - dbeta - xhat dgamma) with xhat = (x - mean) s written
out, so xhat is never stored. Sums run over every position of a channel's row: the pads are zero,
so they add nothing, except to the sum of (x - mean)^2, where each adds mean^2, taken off again.

Why whole channels: every statistic belongs to one channel, so each thread takes a block of
channel rows and runs the whole forward (or backward) of its block with no other thread's help.
Each NumPy step then covers the thread's whole block: a few long calls, during which NumPy
releases the GIL, scale to both cores; hundreds of short ones would queue for the GIL.
The variance is two-pass (the mean first, then the sum of (x - mean)^2): a one-pass
E[x^2] - mean^2 in float32 loses most of its digits when the mean is large next to the spread.
"""
from __future__ import annotations

import numpy as np

from minibn.autograd import Context
from minibn.batchnorm import update_running_stats
from minibn.fast import buffers
from minibn.fast.layout import FlatFunction, FlatLayout
from minibn.fast.threads import in_parallel, split


def _rows(channels: int, part: int, parts: int) -> slice:
    mine = split(channels, part, parts)
    return slice(mine.start, mine.stop)


class BatchNormFlat(FlatFunction):
    """BatchNorm (+ residual) (+ ReLU) on flat (C, L) activations; gamma, beta (C,); residual (C, L).

    Training mode uses the batch statistics over the M = N*H*W pixels and updates the running
    buffers in place (unbiased variance, as PyTorch); eval mode uses the running statistics.
    Its textbook twin, and test oracle: relu(batchnorm.BatchNorm(x) + residual), three ops.
    """

    @staticmethod
    def forward(ctx: Context, x, gamma, beta, residual=None, *, layout: FlatLayout, running_mean, running_var,
                training: bool, momentum: float, eps: float, relu: bool):
        channels, length = x.shape
        m, pads = layout.pixels_per_channel, length - layout.pixels_per_channel
        out = buffers.empty(x.shape, x.dtype)
        mean = np.array(running_mean, dtype=np.float64)  # eval mode: the running statistics
        var = np.array(running_var, dtype=np.float64)
        ones = np.ones(length, dtype=x.dtype)

        def work(part, parts):
            rows = _rows(channels, part, parts)
            y = out[rows]
            if training:
                mean[rows] = x[rows] @ ones / m  # pads are zero; a matrix-vector product is BLAS's fastest sum
                centered = np.subtract(x[rows], mean[rows, None].astype(x.dtype), out=y)
                squares = np.einsum("ij,ij->i", centered, centered)
                var[rows] = (squares - pads * mean[rows] ** 2) / m  # each pad added (0 - mean)^2
                y *= (gamma[rows] / np.sqrt(var[rows] + eps)).astype(x.dtype)[:, None]  # a (x - mean)
                y += beta[rows, None]
            else:
                a = gamma[rows] / np.sqrt(var[rows] + eps)
                np.multiply(x[rows], a.astype(x.dtype)[:, None], out=y)
                y += (beta[rows] - a * mean[rows]).astype(x.dtype)[:, None]
            if residual is not None:
                y += residual[rows]
            if relu:
                np.maximum(y, 0, out=y)
            layout.zero_pads(y)  # b (and relu(b)) is not 0 at the pads
        in_parallel(work)

        if training:
            update_running_stats(running_mean, running_var, mean, var, m, momentum)
        ctx.save_for_backward(x, out if relu else None, gamma, mean, 1 / np.sqrt(var + eps))
        ctx.layout, ctx.training, ctx.has_residual = layout, training, residual is not None
        return out

    @staticmethod
    def backward(ctx: Context, g):
        x, out, gamma, mean, inv_std = ctx.saved
        m = ctx.layout.pixels_per_channel
        needs_x, needs_gamma, needs_beta = ctx.needs_input_grad[:3]
        channels, length = x.shape
        dx = buffers.empty(x.shape, x.dtype) if needs_x else None
        # ge, the gradient through the ReLU, is also the residual's gradient: then it needs its own array
        ge = g if out is None else (dx if needs_x and not ctx.has_residual else buffers.empty(g.shape, g.dtype))
        dbeta, dgamma = np.empty(channels), np.empty(channels)
        ones = np.ones(length, dtype=x.dtype)

        def work(part, parts):
            rows = _rows(channels, part, parts)
            shape = (rows.stop - rows.start, length)
            if out is not None:
                positive = np.greater(out[rows], 0, out=buffers.scratch("positive", shape, bool))
                np.multiply(g[rows], positive, out=ge[rows])
            dbeta[rows] = ge[rows] @ ones
            centered = np.subtract(x[rows], mean[rows, None].astype(x.dtype),
                                   out=buffers.scratch("centered", shape, x.dtype))
            dgamma[rows] = np.einsum("ij,ij->i", ge[rows], centered) * inv_std[rows]
            if not needs_x:
                return
            s = inv_std[rows]
            d = np.multiply(ge[rows], (gamma[rows] * s).astype(x.dtype)[:, None], out=dx[rows])  # k1 ge
            if ctx.training:  # + k2 (x - mean) - gamma s dbeta / M, which is k2 x + k3
                centered *= (-gamma[rows] * s * s * dgamma[rows] / m).astype(x.dtype)[:, None]
                d += centered
                d += (-gamma[rows] * s * dbeta[rows] / m).astype(x.dtype)[:, None]
                ctx.layout.zero_pads(d)  # the constant is not 0 at the pads
        in_parallel(work)
        return (dx, dgamma.astype(gamma.dtype) if needs_gamma else None,
                dbeta.astype(gamma.dtype) if needs_beta else None, *((ge,) if ctx.has_residual else ()))
