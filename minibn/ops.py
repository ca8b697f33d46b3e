"""Elementary ops: arithmetic with broadcasting, exp/log/sqrt, relu and matmul.

Reductions (sum, mean, max) and shape ops (reshape, transpose, indexing, pad) are in shape_ops.py.

Each op is a Function whose forward and backward sit together, with the shapes in its
docstring (a, b and out are arrays of any shape); ``g`` is the upstream gradient dL/d(out), of
out's shape.
"""
from __future__ import annotations

from minibn.autograd import Context, Function
from minibn.backend import array_module


def unbroadcast(grad, shape):
    """Sum ``grad`` back down to ``shape``: the backward of NumPy broadcasting.

    Broadcasting copies an input along new leading axes and along axes of size 1,
    so its gradient adds up the copies over exactly those axes.
    """
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(axis for axis, size in enumerate(shape) if size == 1 and grad.shape[axis] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad


class Add(Function):
    """out = a + b (broadcast).  da = unbroadcast(g), db = unbroadcast(g)."""

    @staticmethod
    def forward(ctx: Context, a, b):
        ctx.shapes = a.shape, b.shape
        return a + b

    @staticmethod
    def backward(ctx: Context, g):
        a_shape, b_shape = ctx.shapes
        return unbroadcast(g, a_shape), unbroadcast(g, b_shape)


class Sub(Function):
    """out = a - b (broadcast).  da = unbroadcast(g), db = -unbroadcast(g)."""

    @staticmethod
    def forward(ctx: Context, a, b):
        ctx.shapes = a.shape, b.shape
        return a - b

    @staticmethod
    def backward(ctx: Context, g):
        a_shape, b_shape = ctx.shapes
        return unbroadcast(g, a_shape), -unbroadcast(g, b_shape)


class Mul(Function):
    """out = a * b (broadcast).  da = unbroadcast(g * b), db = unbroadcast(g * a)."""

    @staticmethod
    def forward(ctx: Context, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx: Context, g):
        a, b = ctx.saved
        da = unbroadcast(g * b, a.shape) if ctx.needs_input_grad[0] else None
        db = unbroadcast(g * a, b.shape) if ctx.needs_input_grad[1] else None
        return da, db


class Div(Function):
    """out = a / b (broadcast).  da = unbroadcast(g / b), db = unbroadcast(-g * a / b**2)."""

    @staticmethod
    def forward(ctx: Context, a, b):
        ctx.save_for_backward(a, b)
        return a / b

    @staticmethod
    def backward(ctx: Context, g):
        a, b = ctx.saved
        da = unbroadcast(g / b, a.shape) if ctx.needs_input_grad[0] else None
        db = unbroadcast(-g * a / (b * b), b.shape) if ctx.needs_input_grad[1] else None
        return da, db


class Neg(Function):
    """out = -a.  da = -g."""

    @staticmethod
    def forward(ctx: Context, a):
        return -a

    @staticmethod
    def backward(ctx: Context, g):
        return -g


class Pow(Function):
    """out = a ** p for a constant p.  da = g * p * a**(p-1)."""

    @staticmethod
    def forward(ctx: Context, a, exponent: float):
        ctx.save_for_backward(a)
        ctx.exponent = exponent
        return a ** exponent

    @staticmethod
    def backward(ctx: Context, g):
        (a,) = ctx.saved
        p = ctx.exponent
        return g * p * a ** (p - 1)


class Exp(Function):
    """out = exp(a).  da = g * out."""

    @staticmethod
    def forward(ctx: Context, a):
        out = array_module(a).exp(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Context, g):
        (out,) = ctx.saved
        return g * out


class Log(Function):
    """out = log(a).  da = g / a."""

    @staticmethod
    def forward(ctx: Context, a):
        ctx.save_for_backward(a)
        return array_module(a).log(a)

    @staticmethod
    def backward(ctx: Context, g):
        (a,) = ctx.saved
        return g / a


class Sqrt(Function):
    """out = sqrt(a).  da = g / (2 out)."""

    @staticmethod
    def forward(ctx: Context, a):
        out = array_module(a).sqrt(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Context, g):
        (out,) = ctx.saved
        return g / (2 * out)


class ReLU(Function):
    """out = max(a, 0).  da = g * [a > 0]  (the kink at 0 gets gradient 0, as in PyTorch)."""

    @staticmethod
    def forward(ctx: Context, a):
        out = array_module(a).maximum(a, 0)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: Context, g):
        (out,) = ctx.saved
        return g * (out > 0)


class MatMul(Function):
    """out = a @ b, a (..., M, K), b (..., K, N) -> (..., M, N).

    da = g @ b^T (..., M, K),  db = a^T @ g (..., K, N), each unbroadcast over batch axes.
    """

    @staticmethod
    def forward(ctx: Context, a, b):
        if a.ndim < 2 or b.ndim < 2:
            raise ValueError(f"matmul needs inputs of at least 2 dimensions, got shapes {a.shape} and {b.shape}")
        ctx.save_for_backward(a, b)
        return a @ b

    @staticmethod
    def backward(ctx: Context, g):
        a, b = ctx.saved
        da = unbroadcast(g @ b.swapaxes(-1, -2), a.shape) if ctx.needs_input_grad[0] else None
        db = unbroadcast(a.swapaxes(-1, -2) @ g, b.shape) if ctx.needs_input_grad[1] else None
        return da, db
