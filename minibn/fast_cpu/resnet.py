"""The CIFAR ResNet's forward pass on the flat layout: where the layout conversions happen.

The images are converted once, at the stem; every activation and gradient inside the network stays
flat; global average pooling leaves the flat layout again for the linear head. The modules, their
parameters and buffers are the same objects the textbook forward uses (models.py), so a model
trains, saves and loads the same way on either path.
"""
from __future__ import annotations

import numpy as np

from minibn import nn
from minibn.fast_cpu import buffers
from minibn.fast_cpu.batchnorm import BatchNormFlat
from minibn.fast_cpu.conv import Conv3x3Flat, ConvStridedFlat
from minibn.fast_cpu.layout import FlatLayout, from_flat, to_flat
from minibn.tensor import Context, Function, Tensor


class ToFlat(Function):
    """(N, C, H, W) -> (C, length) in the flat layout.  dx = the pixels of g, back in NCHW."""

    @staticmethod
    def forward(ctx: Context, images, layout: FlatLayout):
        ctx.layout = layout
        return to_flat(images, layout)

    @staticmethod
    def backward(ctx: Context, g):
        return from_flat(g, ctx.layout)


class FromFlat(Function):
    """(C, length) -> (N, C, H, W), the pixels only.  dx = g in the flat layout, zeros at the pads."""

    @staticmethod
    def forward(ctx: Context, flat, layout: FlatLayout):
        ctx.layout = layout
        return from_flat(flat, layout)

    @staticmethod
    def backward(ctx: Context, g):
        return to_flat(g, ctx.layout)


class GlobalAvgPoolFlat(Function):
    """(C, length) -> (N, C): the mean of each image's H x W pixels.  dx = g / (H W) at every pixel."""

    @staticmethod
    def forward(ctx: Context, x, layout: FlatLayout):
        ctx.layout = layout
        return (layout.grid(x).sum(axis=(2, 3)) / (layout.h * layout.w)).T.copy()  # pads are zero

    @staticmethod
    def backward(ctx: Context, g):
        layout = ctx.layout
        dx = buffers.zeros((g.shape[1], layout.length), g.dtype)
        layout.pixels(dx)[...] = (g.T / (layout.h * layout.w))[:, :, None, None]
        return dx


def conv(x: Tensor, layer: nn.Conv2d, layout: FlatLayout) -> tuple[Tensor, FlatLayout]:
    """A conv layer of the ResNet on flat input; returns the output and its layout."""
    k = layer.weight.shape[2]
    if layer.bias is not None:
        raise ValueError("the fast CPU path has no conv bias (the recipe's convs have none)")
    if k == 3 and layer.stride == 1 and layer.padding == 1:
        return Conv3x3Flat.apply(x, layer.weight, layout=layout), layout
    if layer.padding > 1 or layer.padding > k // 2:
        raise ValueError(f"the fast CPU path has no {k}x{k} conv with padding {layer.padding}")
    out_size = [(size + 2 * layer.padding - k) // layer.stride + 1 for size in (layout.h, layout.w)]
    out_layout = FlatLayout(layout.n, *out_size)
    return ConvStridedFlat.apply(x, layer.weight, layout=layout, out_layout=out_layout, stride=layer.stride,
                                 padding=layer.padding), out_layout


def batch_norm(x: Tensor, bn: nn.BatchNorm2d, layout: FlatLayout, relu: bool, residual: Tensor | None = None):
    """bn(x) (+ residual), then ReLU if ``relu``, in one op; the running statistics update as in bn's forward."""
    inputs = (x, bn.weight, bn.bias) if residual is None else (x, bn.weight, bn.bias, residual)
    return BatchNormFlat.apply(*inputs, layout=layout, running_mean=bn.running_mean, running_var=bn.running_var,
                               training=bn.training, momentum=bn.momentum, eps=bn.eps, relu=relu)


def basic_block(block, x: Tensor, layout: FlatLayout) -> tuple[Tensor, FlatLayout]:
    """models.BasicBlock: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)), two fused BN ops."""
    out, out_layout = conv(x, block.conv1, layout)
    out = batch_norm(out, block.bn1, out_layout, relu=True)
    out, _ = conv(out, block.conv2, out_layout)
    shortcut = x
    if block.shortcut is not None:
        projected, _ = conv(x, block.shortcut[0], layout)
        shortcut = batch_norm(projected, block.shortcut[1], out_layout, relu=False)
    return batch_norm(out, block.bn2, out_layout, relu=True, residual=shortcut), out_layout


def resnet_forward(model, images: Tensor) -> Tensor:
    """models.CifarResNet.forward on the flat layout: (N, 3, H, W) images -> (N, classes) logits."""
    images = images if isinstance(images, Tensor) else Tensor(images)  # the training loop passes arrays
    n, _, h, w = images.shape
    layout = FlatLayout(n, h, w)
    out, layout = conv(ToFlat.apply(images, layout=layout), model.conv1, layout)
    out = batch_norm(out, model.bn1, layout, relu=True)
    for stage in (model.layer1, model.layer2, model.layer3):
        for _, block in stage.named_children():
            out, layout = basic_block(block, out, layout)
    return model.fc(GlobalAvgPoolFlat.apply(out, layout=layout))
