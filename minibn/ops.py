"""Elementary ops: arithmetic with broadcasting, exp/log/sqrt, relu, matmul, reductions, shapes.

Each op is a Function whose forward and backward sit together. Shapes use
N, D for "any shape"; ``g`` is the upstream gradient dL/d(out), of out's shape.
"""
from __future__ import annotations

from minibn.backend import array_module
from minibn.tensor import Context, Function


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


def _keep_reduced_axes(g, shape, axis, keepdims):
    """Give ``g`` back the reduced axes (as size 1) so it broadcasts against the input."""
    if axis is None or keepdims:
        return g.reshape([1] * len(shape)) if axis is None and not keepdims else g
    axes = (axis,) if isinstance(axis, int) else axis
    axes = sorted(a % len(shape) for a in axes)
    for a in axes:
        g = array_module(g).expand_dims(g, a)
    return g


class Sum(Function):
    """out = a.sum(axis, keepdims).  da = g broadcast back to a's shape."""

    @staticmethod
    def forward(ctx: Context, a, axis=None, keepdims=False):
        ctx.shape, ctx.axis, ctx.keepdims = a.shape, axis, keepdims
        return a.sum(axis=axis, keepdims=keepdims)

    @staticmethod
    def backward(ctx: Context, g):
        g = _keep_reduced_axes(g, ctx.shape, ctx.axis, ctx.keepdims)
        return array_module(g).broadcast_to(g, ctx.shape).copy()


class Mean(Function):
    """out = a.mean(axis, keepdims).  da = g / (number of elements averaged), broadcast back."""

    @staticmethod
    def forward(ctx: Context, a, axis=None, keepdims=False):
        out = a.mean(axis=axis, keepdims=keepdims)
        ctx.shape, ctx.axis, ctx.keepdims = a.shape, axis, keepdims
        ctx.count = a.size // max(out.size, 1)
        return out

    @staticmethod
    def backward(ctx: Context, g):
        g = _keep_reduced_axes(g, ctx.shape, ctx.axis, ctx.keepdims) / ctx.count
        return array_module(g).broadcast_to(g, ctx.shape).copy()


class Max(Function):
    """out = a.max(axis, keepdims).  da = g at the maximal elements (shared equally by ties), 0 elsewhere."""

    @staticmethod
    def forward(ctx: Context, a, axis=None, keepdims=False):
        out = a.max(axis=axis, keepdims=True)
        ctx.save_for_backward(a == out)
        ctx.shape, ctx.axis, ctx.keepdims = a.shape, axis, keepdims
        return out if keepdims else a.max(axis=axis)

    @staticmethod
    def backward(ctx: Context, g):
        (is_max,) = ctx.saved
        g = _keep_reduced_axes(g, ctx.shape, ctx.axis, ctx.keepdims)
        return g * is_max / is_max.sum(axis=ctx.axis, keepdims=True)


class Reshape(Function):
    """out = a.reshape(shape).  da = g.reshape(a.shape)."""

    @staticmethod
    def forward(ctx: Context, a, shape):
        ctx.shape = a.shape
        return a.reshape(shape)

    @staticmethod
    def backward(ctx: Context, g):
        return g.reshape(ctx.shape)


class Transpose(Function):
    """out = a.transpose(axes).  da = g.transpose(inverse of axes)."""

    @staticmethod
    def forward(ctx: Context, a, axes=None):
        axes = tuple(reversed(range(a.ndim))) if axes is None else axes
        ctx.inverse = tuple(sorted(range(len(axes)), key=lambda i: axes[i]))
        return a.transpose(axes)

    @staticmethod
    def backward(ctx: Context, g):
        return g.transpose(ctx.inverse)


def _is_basic_index(index) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(p, (int, slice)) or p is None or p is Ellipsis for p in parts)


class GetItem(Function):
    """out = a[index].  da = zeros of a's shape with g added at ``index`` (repeats add up)."""

    @staticmethod
    def forward(ctx: Context, a, index):
        xp = array_module(a)
        if xp.__name__ != "numpy":  # CuPy wants its own arrays as indices
            parts = index if isinstance(index, tuple) else (index,)
            index = tuple(xp.asarray(p) if type(p).__module__ == "numpy" and hasattr(p, "shape") else p
                          for p in parts)
        ctx.shape, ctx.dtype, ctx.index = a.shape, a.dtype, index
        return a[index]

    @staticmethod
    def backward(ctx: Context, g):
        xp = array_module(g)
        da = xp.zeros(ctx.shape, dtype=ctx.dtype)
        if _is_basic_index(ctx.index):
            da[ctx.index] = g  # a basic index selects each element at most once
        elif xp.__name__ == "numpy":
            xp.add.at(da, ctx.index, g)
        else:
            import cupyx
            cupyx.scatter_add(da, ctx.index, g)
        return da


class Pad(Function):
    """out = a padded with a constant; pad_width as in numpy.pad.  da = g with the border cut off."""

    @staticmethod
    def forward(ctx: Context, a, pad_width, value=0.0):
        xp = array_module(a)
        if isinstance(pad_width, int):
            pad_width = [(pad_width, pad_width)] * a.ndim
        ctx.inside = tuple(slice(before, before + size) for (before, _), size in zip(pad_width, a.shape))
        return xp.pad(a, pad_width, mode="constant", constant_values=value)

    @staticmethod
    def backward(ctx: Context, g):
        return g[ctx.inside].copy()
