"""Reference solution (for instructors and the tests) of exercise 5: the backward of BatchNorm in training mode, as one fused formula.

    mean, var = per-channel mean and (biased) variance of x over N, H, W  (M values each)
    xhat      = (x - mean) / sqrt(var + eps)
    y         = gamma * xhat + beta

Derive dL/dx by hand (lesson 05 builds the same thing from small ops, so you can compare), write
``BatchNorm.backward``, then grade it:

    minibn gradcheck lessons/exercises/ex_batchnorm.py
"""
from minibn.backend import array_module
from minibn.tensor import Function

EXERCISE = "batch_norm"
EPS = 1e-5


class BatchNorm(Function):
    """x (N, C, H, W), gamma (C,), beta (C,) -> y (N, C, H, W), normalized with the batch statistics."""

    @staticmethod
    def forward(ctx, x, gamma, beta):
        xp = array_module(x)
        shape = (1, x.shape[1], 1, 1)
        mean = x.mean(axis=(0, 2, 3)).reshape(shape)
        var = x.var(axis=(0, 2, 3)).reshape(shape)
        inv_std = 1 / xp.sqrt(var + EPS)                                  # (1, C, 1, 1)
        xhat = (x - mean) * inv_std
        ctx.save_for_backward(xhat, inv_std, gamma)
        return gamma.reshape(shape) * xhat + beta.reshape(shape)

    @staticmethod
    def backward(ctx, g):
        """g = dL/dy (N, C, H, W). Return (dx (N, C, H, W), dgamma (C,), dbeta (C,))."""
        xhat, inv_std, gamma = ctx.saved
        m = g.size // g.shape[1]   # values per channel
        shape = (1, g.shape[1], 1, 1)
        dbeta = g.sum(axis=(0, 2, 3))
        dgamma = (g * xhat).sum(axis=(0, 2, 3))
        dx = gamma.reshape(shape) * inv_std / m * (m * g - dbeta.reshape(shape) - xhat * dgamma.reshape(shape))
        return dx, dgamma, dbeta
