"""Batch normalization as one fused op (forward and backward in one Function each).

x is (N, C, H, W) or (N, C). Statistics are per channel c, over the M = N*H*W
(or N) values of that channel. gamma (C,) and beta (C,) are the learned scale and
shift; running_mean and running_var (C,) are buffers updated in place.
"""
from __future__ import annotations

from minibn.backend import array_module
from minibn.tensor import Context, Function, Tensor


def _channel_axes_and_shape(x):
    if x.ndim == 4:
        return (0, 2, 3), (1, x.shape[1], 1, 1)
    if x.ndim == 2:
        return (0,), (1, x.shape[1])
    raise ValueError(f"batch_norm expects (N, C) or (N, C, H, W) input, got shape {x.shape}")


class BatchNorm(Function):
    """y = gamma * xhat + beta with xhat = (x - mean) / sqrt(var + eps).

    Training mode uses the batch mean and biased variance and updates the buffers
    (running = (1 - momentum) running + momentum batch, the variance unbiased by M/(M-1),
    as PyTorch does). Eval mode uses the running statistics.

    Backward, with g = dL/dy, sums over the M values of each channel and s = 1/sqrt(var+eps):
      dbeta  = sum(g)
      dgamma = sum(g * xhat)
      eval:  dx = gamma * s * g                                   (mean, var are constants)
      train: dx = gamma * s / M * (M g - dbeta - xhat * dgamma)
    The train formula: xhat depends on x directly and through mean and var. Writing
    dxhat = gamma g, the chain rule gives dx = s (dxhat - mean(dxhat) - xhat mean(dxhat xhat)),
    and mean(dxhat) = gamma dbeta / M, mean(dxhat xhat) = gamma dgamma / M.
    """

    @staticmethod
    def forward(ctx: Context, x, gamma, beta, running_mean, running_var, training=True,
                momentum=0.1, eps=1e-5):
        axes, shape = _channel_axes_and_shape(x)
        m = x.size // x.shape[1]
        if training:
            mean = x.mean(axis=axes)
            xhat = x - mean.reshape(shape)                  # centered for now; normalized in place below
            var = (xhat * xhat).mean(axis=axes)
            inv_std = 1 / array_module(x).sqrt(var + eps)
            xhat *= inv_std.reshape(shape)
            y = xhat * gamma.reshape(shape)
            y += beta.reshape(shape)
            update_running_stats(running_mean, running_var, mean, var, m, momentum)
        else:
            inv_std = 1 / array_module(x).sqrt(running_var + eps)
            xhat = (x - running_mean.reshape(shape)) * inv_std.reshape(shape)
            y = xhat * gamma.reshape(shape) + beta.reshape(shape)
        ctx.save_for_backward(xhat, inv_std, gamma)
        ctx.training, ctx.axes, ctx.shape, ctx.m = training, axes, shape, m
        return y

    @staticmethod
    def backward(ctx: Context, g):
        xhat, inv_std, gamma = ctx.saved
        needs_x, needs_gamma, needs_beta = ctx.needs_input_grad[:3]
        shape, m = ctx.shape, ctx.m
        dbeta = g.sum(axis=ctx.axes, out=ctx.grad_destination(2))  # see Context.grad_destination
        dgamma = (g * xhat).sum(axis=ctx.axes, out=ctx.grad_destination(1))
        dx = None
        if needs_x:
            scale = (gamma * inv_std).reshape(shape)
            if ctx.training:  # dx = scale * (g - dbeta/M - xhat * dgamma/M), with in-place steps
                dx = xhat * (dgamma / m).reshape(shape)
                dx += (dbeta / m).reshape(shape)
                dx -= g
                dx *= -scale
            else:
                dx = scale * g
        return dx, (dgamma if needs_gamma else None), (dbeta if needs_beta else None)


def update_running_stats(running_mean, running_var, mean, var, m: int, momentum: float) -> None:
    """running = (1 - momentum) running + momentum batch, in place, the variance unbiased by M/(M-1), as
    PyTorch does: the buffers a user holds see the update as soon as the forward that computed the
    statistics has run. The one update: the fast BatchNorms call it (minibn/fast/running_stats.py batches
    it across layers on a GPU, the same formula line by line)."""
    if m < 2:
        raise ValueError("batch_norm in training mode needs more than one value per channel")
    running_mean *= 1 - momentum
    running_mean += momentum * mean
    running_var *= 1 - momentum
    running_var += momentum * var * (m / (m - 1))


def batch_norm(x: Tensor, gamma: Tensor, beta: Tensor, running_mean, running_var, training: bool,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """The textbook BatchNorm op; see BatchNorm. ``running_mean``/``running_var`` are arrays updated in
    place in training mode (also when gamma and beta are frozen). Layers call F.batch_norm, which runs
    this op or a fast version of it (minibn/registry.py)."""
    return BatchNorm.apply(x, gamma, beta, running_mean=running_mean, running_var=running_var,
                           training=training, momentum=momentum, eps=eps)
