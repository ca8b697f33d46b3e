"""The CIFAR ResNet of the recipe (depth 6n+2) and the experiment's trainable-parameter modes."""
from __future__ import annotations

import numpy as np

from minibn import nn
from minibn import functional as F
from minibn.backend import to_device

MODES = ("all", "bn", "bn+output", "output", "random")


def valid_depths(up_to: int = 900) -> list[int]:
    return list(range(8, up_to + 1, 6))


class BasicBlock(nn.Module):
    """conv3x3 -> BN -> ReLU -> conv3x3 -> BN, plus the shortcut, then ReLU (He et al. 2016).

    The shortcut is the identity, or, where the block halves the map and widens the
    channels, a 1x1 conv with stride 2 followed by BN (``shortcut.0`` and ``shortcut.1``).
    This forward is what runs, on every backend: each op runs its textbook version or a registered fast one.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int, rng: np.random.Generator):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, rng=rng)
        self.bn1 = nn.BatchNorm2d(out_channels, rng=rng)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, rng=rng)
        self.bn2 = nn.BatchNorm2d(out_channels, rng=rng)
        self.shortcut = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, rng=rng),
                                          nn.BatchNorm2d(out_channels, rng=rng))

    def forward(self, x):
        out = self.bn1.forward_relu(self.conv1(x))                        # relu(bn1(conv1(x)))
        shortcut = x if self.shortcut is None else self.shortcut(x)
        return self.bn2.forward_relu(self.conv2(out), residual=shortcut)  # relu(bn2(conv2(out)) + shortcut)


class CifarResNet(nn.Module):
    """(N, 3, 32, 32) images -> (N, num_classes) logits; three stages of W, 2W, 4W channels of ``block``s."""

    def __init__(self, depth: int, width: int = 16, num_classes: int = 10, seed: int | None = 0,
                 block: type[nn.Module] | None = None):
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"depth must be 6n+2 (8, 14, 20, 26, 32, 44, 56, 110, ...), got {depth}")
        if width < 1 or num_classes < 1:
            raise ValueError(f"width and num_classes must be positive, got {width} and {num_classes}")
        rng = np.random.default_rng(seed)
        blocks = (depth - 2) // 6
        self.depth, self.width = depth, width
        self.conv1 = nn.Conv2d(3, width, 3, stride=1, padding=1, rng=rng)
        self.bn1 = nn.BatchNorm2d(width, rng=rng)
        channels = width
        for stage, stage_width in enumerate((width, 2 * width, 4 * width), start=1):
            layer = []
            for i in range(blocks):
                stride = 2 if stage > 1 and i == 0 else 1
                layer.append((block or BasicBlock)(channels, stage_width, stride, rng))
                channels = stage_width
            setattr(self, f"layer{stage}", nn.Sequential(*layer))
        self.fc = nn.Linear(channels, num_classes, rng=rng)

    def forward(self, x):
        out = self.bn1.forward_relu(self.conv1(x))                        # relu(bn1(conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return self.fc(F.global_avg_pool2d(out))


def cifar_resnet(depth: int, width: int = 16, num_classes: int = 10, seed: int | None = 0,
                 block: type[nn.Module] | None = None) -> CifarResNet:
    """The recipe's CIFAR ResNet: He-normal convs and linear, BN gamma ~ U[0, 1), beta = 0. ``block`` is
    the residual block's class, ``block(in_channels, out_channels, stride, rng)``: BasicBlock by default."""
    return CifarResNet(depth, width, num_classes, seed, block)


def set_trainable(model: nn.Module, mode: str, seed: int = 0) -> int:
    """Freeze and unfreeze parameters for one of the experiment's modes; return the trainable count.

    all: everything. bn: BatchNorm gamma and beta. bn+output: those and the final linear layer.
    output: the final linear layer. random: BN frozen, and in every conv, for each output
    channel, 2 random weights of its filter train (a seeded 0/1 mask on the weight).
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    rng = np.random.default_rng(seed)
    count = 0
    for name, module in model.named_modules():
        is_bn, is_output = isinstance(module, nn.BatchNorm2d), name == "fc"
        for attr, p in vars(module).items():
            if not isinstance(p, nn.Parameter):
                continue
            p.mask, p.grad = None, None
            p.requires_grad = (mode == "all" or (is_bn and mode in ("bn", "bn+output"))
                               or (is_output and mode in ("output", "bn+output")))
            if mode == "random" and isinstance(module, nn.Conv2d) and attr == "weight":
                p.mask = to_device(_two_per_output_channel(rng, p.shape), dtype=p.dtype)
                p.requires_grad = True
            if p.requires_grad:
                count += p.size if p.mask is None else int(p.mask.sum())
    return count


def _two_per_output_channel(rng: np.random.Generator, shape) -> np.ndarray:
    out_channels, fan_in = shape[0], int(np.prod(shape[1:]))
    mask = np.zeros((out_channels, fan_in), dtype=np.float32)
    for o in range(out_channels):
        mask[o, rng.choice(fan_in, size=2, replace=False)] = 1
    return mask.reshape(shape)


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Parameter counts by kind, as in the recipe's table."""
    counts = {"conv": 0, "bn": 0, "linear": 0}
    for module in model.modules():
        kind = {nn.Conv2d: "conv", nn.BatchNorm2d: "bn", nn.Linear: "linear"}.get(type(module))
        if kind:
            counts[kind] += sum(p.size for p in vars(module).values() if isinstance(p, nn.Parameter))
    counts["total"] = sum(counts.values())
    return counts
