"""The same CIFAR ResNet in PyTorch, for `minibn bench --compare torch` and the agreement tests.

Only imported when asked for: PyTorch is not a dependency of minibn.
"""
from __future__ import annotations

import numpy as np


def torch_cifar_resnet(depth: int, width: int = 16, num_classes: int = 10):
    """A torch.nn.Module with exactly minibn's architecture and parameter names."""
    import torch.nn as nn
    import torch.nn.functional as F

    class BasicBlock(nn.Module):
        def __init__(self, in_channels, out_channels, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(out_channels)
            self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(out_channels)
            self.shortcut = None
            if stride != 1 or in_channels != out_channels:
                self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                              nn.BatchNorm2d(out_channels))

        def forward(self, x):
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return F.relu(out + (x if self.shortcut is None else self.shortcut(x)))

    class CifarResNet(nn.Module):
        def __init__(self):
            super().__init__()
            blocks = (depth - 2) // 6
            self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(width)
            channels = width
            for stage, stage_width in enumerate((width, 2 * width, 4 * width), start=1):
                layer = []
                for i in range(blocks):
                    layer.append(BasicBlock(channels, stage_width, 2 if stage > 1 and i == 0 else 1))
                    channels = stage_width
                setattr(self, f"layer{stage}", nn.Sequential(*layer))
            self.fc = nn.Linear(channels, num_classes)

        def forward(self, x):
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.layer3(self.layer2(self.layer1(out)))
            return self.fc(out.mean(dim=(2, 3)))

    return CifarResNet()


def set_torch_trainable(model, mode: str) -> None:
    """BN-only and friends for the torch model (the `random` mode's mask is not reproduced)."""
    for name, p in model.named_parameters():
        is_bn = ".bn" in f".{name}" or "shortcut.1" in name
        is_output = name.startswith("fc.")
        p.requires_grad = (mode == "all" or (is_bn and mode in ("bn", "bn+output"))
                           or (is_output and mode in ("output", "bn+output")))


def load_minibn_state(torch_model, state: dict[str, np.ndarray]) -> None:
    """Copy a minibn state dict into the torch model (PyTorch's num_batches_tracked are left as they are)."""
    import torch
    own = torch_model.state_dict()
    for name, array in state.items():
        if name.endswith("_mask"):
            continue
        own[name].copy_(torch.from_numpy(np.ascontiguousarray(array)))
