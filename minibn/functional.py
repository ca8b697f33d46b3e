"""Layers as functions on Tensors: relu, linear, conv2d, batch_norm, pooling, losses.

``minibn.functional`` reads like ``torch.nn.functional``. The ops that have a fast version
(conv2d, batch_norm, batch_norm_relu, global_avg_pool2d, cross_entropy) first ask minibn/registry.py
for it, and run their textbook op (here, in conv.py and in batchnorm.py) where there is none.
"""
from __future__ import annotations

import numpy as np

from minibn import ops, registry
from minibn.backend import array_module
from minibn.batchnorm import BatchNorm
from minibn.conv import Conv2d, conv2d_naive
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
        needs = ctx.needs_input_grad + (False,) * (3 - len(ctx.needs_input_grad))  # no bias: no third input
        dx = g @ weight if needs[0] else None
        dw = xp.matmul(g.T, x, out=ctx.grad_destination(1)) if needs[1] else None  # see Context.grad_destination
        db = g.sum(axis=0, out=ctx.grad_destination(2)) if needs[2] else None
        return dx, dw, db


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    return Linear.apply(x, weight) if bias is None else Linear.apply(x, weight, bias)


def _tensor(x) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)  # the training loop passes plain arrays


def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: int = 1, padding: int = 0) -> Tensor:
    """2-D cross-correlation (PyTorch's conv2d): x (N, C, H, W), weight (O, C, kh, kw), bias (O,) ->
    (N, O, Ho, Wo). The textbook op is conv.Conv2d."""
    out = registry.run_fast("conv2d", _tensor(x), weight, bias, stride, padding)
    if out is not None:
        return out
    return Conv2d.apply(x, weight, *(() if bias is None else (bias,)), stride=stride, padding=padding)


def batch_norm(x: Tensor, gamma: Tensor, beta: Tensor, running_mean, running_var, training: bool,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalize each channel of x (N, C, H, W) or (N, C); running_mean and running_var (C,) are arrays
    updated in place in training mode. The textbook op is batchnorm.BatchNorm."""
    return batch_norm_relu(x, gamma, beta, running_mean, running_var, training, momentum=momentum, eps=eps,
                           relu=False)


def batch_norm_relu(x: Tensor, gamma: Tensor, beta: Tensor, running_mean, running_var, training: bool,
                    residual: Tensor | None = None, momentum: float = 0.1, eps: float = 1e-5,
                    relu: bool = True) -> Tensor:
    """relu(batch_norm(x) + residual), or relu(batch_norm(x)) without a residual: exactly those textbook ops
    one after another (batchnorm.BatchNorm, ops.Add, ops.ReLU), or one fused fast version where there is one."""
    options = dict(running_mean=running_mean, running_var=running_var, training=training, momentum=momentum,
                   eps=eps)
    out = registry.run_fast("batch_norm_relu", _tensor(x), gamma, beta, residual=residual, relu=relu, **options)
    if out is not None:
        return out
    out = BatchNorm.apply(x, gamma, beta, **options)
    if residual is not None:
        out = out + residual
    return ops.ReLU.apply(out) if relu else out


def global_avg_pool2d(x: Tensor) -> Tensor:
    """(N, C, H, W) -> (N, C): the mean of each feature map, x.mean(axis=(2, 3)) (the ResNet head's pooling)."""
    out = registry.run_fast("global_avg_pool2d", x)
    return out if out is not None else _tensor(x).mean(axis=(2, 3))


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
        # A label outside [0, K) makes the loss and its gradient NaN without a host sync (a check on the host waits
        # for the GPU). Indexing alone would wrap it into a wrong finite loss (CuPy; NumPy for a negative label).
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
    out = registry.run_fast("cross_entropy", logits, labels)
    return out if out is not None else CrossEntropy.apply(logits, labels=labels)
