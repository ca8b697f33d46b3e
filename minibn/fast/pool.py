"""Global average pooling on the flat layout: where the recipe's ResNet leaves it, for the linear head."""
from __future__ import annotations

from minibn.autograd import Context
from minibn.backend import array_module
from minibn.fast import buffers
from minibn.fast.layout import FlatFunction, FlatLayout


class GlobalAvgPoolFlat(FlatFunction):
    """(C, length) -> (N, C): the mean of each image's H x W pixels.  dx = g / (H W) at every pixel.

    Its textbook twin (and test oracle) is functional.global_avg_pool2d, x.mean(axis=(2, 3)) on NCHW.
    """

    @staticmethod
    def forward(ctx: Context, x, layout: FlatLayout):
        ctx.layout = layout
        return (layout.grid(x).sum(axis=(2, 3)) / (layout.h * layout.w)).T.copy()  # pads are zero

    @staticmethod
    def backward(ctx: Context, g):
        layout = ctx.layout
        dx = buffers.zeros((g.shape[1], layout.length), g.dtype, array_module(g))
        layout.pixels(dx)[...] = (g.T / (layout.h * layout.w))[:, :, None, None]
        return dx
