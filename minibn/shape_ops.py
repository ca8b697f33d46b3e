"""Reductions (sum, mean, max) and shape ops (reshape, transpose, indexing, pad).

Each op is a Function whose forward and backward sit together; ``g`` is dL/d(out).
"""
from __future__ import annotations

import numpy as np

from minibn.autograd import Context, Function
from minibn.backend import array_module


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
        return out if keepdims else out.squeeze(axis=axis)  # a view: one reduction

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
    """Integers (NumPy's too), slices, None and ...: a view that selects each element at most once."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(p, (int, np.integer, slice)) or p is None or p is Ellipsis for p in parts)


class GetItem(Function):
    """out = a[index].  da = zeros of a's shape with g added at ``index`` (repeats add up)."""

    @staticmethod
    def forward(ctx: Context, a, index):
        xp = array_module(a)
        if xp.__name__ != "numpy" and not _is_basic_index(index):  # index arrays go to the device once
            parts = index if isinstance(index, tuple) else (index,)
            index = tuple(xp.asarray(p) if isinstance(p, (np.ndarray, list)) else p for p in parts)
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
