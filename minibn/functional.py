"""Layers as functions on Tensors: relu, linear, conv2d, batch_norm, pooling, losses.

``minibn.functional`` reads like ``torch.nn.functional``. The ops that have a fast version
(conv2d, batch_norm, batch_norm_relu, global_avg_pool2d, cross_entropy) pick it, or their textbook
op, in minibn/fast.py; the textbook ops are here, in conv.py and in batchnorm.py.
"""
from __future__ import annotations

import numpy as np

from minibn import ops
from minibn.backend import array_module
from minibn.conv import conv2d_naive
from minibn.tensor import Context, Function, Tensor

__all__ = ["relu", "linear", "conv2d", "conv2d_naive", "batch_norm", "batch_norm_relu", "global_avg_pool2d",
           "log_softmax", "cross_entropy"]


def relu(x: Tensor) -> Tensor:
    return ops.ReLU.apply(x)


class Linear(Function):
    """out = x @ W^T + b.  x (N, in), W (out, in), b (out,) -> out (N, out).

    dx = g @ W (N, in),  dW = g^T @ x (out, in),  db = g summed over N.
    """

    @staticmethod
    def forward(ctx: Context, x, weight, bias=None):
        needs_x, needs_w = ctx.needs_input_grad[:2]
        ctx.save_for_backward(x if needs_w else None, weight if needs_x else None)
        out = x @ weight.T
        return out if bias is None else out + bias

    @staticmethod
    def backward(ctx: Context, g):
        x, weight = ctx.saved
        xp = array_module(g)
        dx = g @ weight if ctx.needs_input_grad[0] else None
        dw = xp.matmul(g.T, x, out=ctx.grad_out(1)) if ctx.needs_input_grad[1] else None  # out: see Context.grad_out
        db = g.sum(axis=0, out=ctx.grad_out(2)) if len(ctx.needs_input_grad) > 2 and ctx.needs_input_grad[2] else None
        return dx, dw, db


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    return Linear.apply(x, weight) if bias is None else Linear.apply(x, weight, bias)


def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: int = 1, padding: int = 0) -> Tensor:
    """2-D cross-correlation (PyTorch's conv2d): x (N, C, H, W), weight (O, C, kh, kw), bias (O,) ->
    (N, O, Ho, Wo). The textbook op is conv.Conv2d; fast.conv2d picks it or a fast version."""
    return fast.conv2d(x, weight, bias, stride, padding)


def batch_norm(x: Tensor, gamma: Tensor, beta: Tensor, running_mean, running_var, training: bool,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalize each channel of x (N, C, H, W) or (N, C); running_mean and running_var (C,) are arrays
    updated in place in training mode. The textbook op is batchnorm.BatchNorm; fast.batch_norm picks."""
    return fast.batch_norm(x, gamma, beta, running_mean, running_var, training, momentum, eps)


def batch_norm_relu(x: Tensor, gamma: Tensor, beta: Tensor, running_mean, running_var, training: bool,
                    residual: Tensor | None = None, momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """relu(batch_norm(x) + residual), or relu(batch_norm(x)) without a residual: exactly those textbook ops
    one after another, or one fused op where fast.batch_norm_relu has one (the flat layout)."""
    return fast.batch_norm_relu(x, gamma, beta, running_mean, running_var, training, momentum, eps, residual)


def global_avg_pool2d(x: Tensor) -> Tensor:
    """(N, C, H, W) -> (N, C): the mean of each feature map, x.mean(axis=(2, 3)) (the ResNet head's
    pooling); fast.global_avg_pool2d picks that or its flat-layout twin."""
    return fast.global_avg_pool2d(x)


def _log_softmax(x, axis):
    shifted = x - x.max(axis=axis, keepdims=True)  # exp never overflows
    return shifted - array_module(x).log(array_module(x).exp(shifted).sum(axis=axis, keepdims=True))


class LogSoftmax(Function):
    """out = x - logsumexp(x) along ``axis``.  dx = g - softmax(x) * sum(g) along ``axis``."""

    @staticmethod
    def forward(ctx: Context, x, axis=-1):
        out = _log_softmax(x, axis)
        ctx.save_for_backward(out)
        ctx.axis = axis
        return out

    @staticmethod
    def backward(ctx: Context, g):
        (out,) = ctx.saved
        return g - array_module(g).exp(out) * g.sum(axis=ctx.axis, keepdims=True)


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    return LogSoftmax.apply(x, axis=axis)


class CrossEntropy(Function):
    """loss = mean over the batch of -log softmax(logits)[label].

    logits (N, K), labels (N,) integers in [0, K) -> a scalar.
    dlogits = g * (softmax(logits) - onehot(labels)) / N.
    """

    @staticmethod
    def forward(ctx: Context, logits, labels):
        xp = array_module(logits)
        n, k = logits.shape
        labels = xp.asarray(labels, dtype=xp.int64)
        if labels.shape != (n,):
            raise ValueError(f"cross_entropy: labels must have shape ({n},), got {labels.shape}")
        log_probs = _log_softmax(logits, axis=1)
        rows = xp.arange(n)
        # A label outside [0, K) makes the loss and its gradient NaN, with no host sync (checking it on the host
        # would wait for the GPU every step). NumPy raises for a label >= K; CuPy and NumPy both wrap a negative
        # one, and CuPy wraps one >= K, into a finite but wrong loss. As unsigned, a negative label is >= K too.
        nan, zero = log_probs.dtype.type(np.nan), log_probs.dtype.type(0)
        invalid = xp.where(labels.astype(xp.uint64) >= k, nan, zero)   # (N,): NaN at a bad label, else 0
        ctx.save_for_backward(log_probs, labels, invalid)
        return -(log_probs[rows, labels] + invalid).mean()

    @staticmethod
    def backward(ctx: Context, g):
        log_probs, labels, invalid = ctx.saved
        xp = array_module(log_probs)
        n = log_probs.shape[0]
        dlogits = xp.exp(log_probs)
        dlogits[xp.arange(n), labels] -= 1
        dlogits += invalid[:, None]
        return dlogits * (g / n)


def cross_entropy(logits: Tensor, labels) -> Tensor:
    """Softmax cross-entropy with integer class labels, averaged over the batch (fused, stable)."""
    if isinstance(labels, Tensor):
        labels = labels.data
    return fast.cross_entropy_op(logits).apply(logits, labels=labels)


from minibn import fast  # noqa: E402  (last: fast.py imports the ops above)
