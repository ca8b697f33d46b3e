"""SGD with momentum and weight decay, and learning-rate schedules stepped per iteration."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Iterable

from minibn import fast
from minibn.backend import to_device

if TYPE_CHECKING:
    from minibn.nn import Parameter


class SGD:
    """PyTorch's SGD: for each trainable parameter p with gradient g,

        d = g + weight_decay * p          (L2 added to the gradient)
        d = d * mask                      (random mode: only unmasked elements move)
        buf = d on the first step, then momentum * buf + d
        p = p - lr * buf

    Parameters with requires_grad False are skipped: no momentum, no decay.
    """

    def __init__(self, params: Iterable[Parameter], lr: float, momentum: float = 0.0, weight_decay: float = 0.0):
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"lr, momentum and weight_decay must be >= 0, got {lr}, {momentum}, {weight_decay}")
        self.params = list(params)
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay
        self.momentum_buffers: dict[int, object] = {}  # index in self.params -> array

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        for i, p in enumerate(self.params):
            if not p.requires_grad or p.grad is None:
                continue
            update = fast.sgd_update(p.data, self.momentum)  # sgd_update below, or its one-launch CuPy twin
            buf = update(p, self.momentum_buffers.get(i), self.lr, self.momentum, self.weight_decay)
            if buf is not None:
                self.momentum_buffers[i] = buf

    def state_dict(self) -> dict:
        return {f"momentum_buffer.{i}": buf for i, buf in self.momentum_buffers.items()}

    def load_state_dict(self, state: dict) -> None:
        """Momentum buffers by parameter index; ValueError naming a key that fits no parameter."""
        buffers = {}
        for key, value in state.items():
            if key.startswith("momentum_buffer."):
                index = key[len("momentum_buffer."):]
                if not index.isdigit() or int(index) >= len(self.params) \
                        or tuple(value.shape) != tuple(self.params[int(index)].shape):
                    raise ValueError(f"optimizer {key} of shape {tuple(value.shape)} fits no parameter")
                buffers[int(index)] = to_device(value, self.params[int(index)].dtype)
        self.momentum_buffers = buffers


def sgd_update(p: Parameter, buf, lr: float, momentum: float, weight_decay: float):
    """One parameter's SGD step, as in SGD's docstring; returns its momentum buffer (None without momentum)."""
    d = p.grad + weight_decay * p.data if weight_decay else p.grad
    if p.mask is not None:
        d = d * p.mask
    if momentum:
        if buf is None:
            buf = d.copy()
        else:
            buf *= momentum
            buf += d
        d = buf
    p.data -= lr * d
    return buf


SCHEDULES = ("multistep", "cosine", "constant")


def learning_rate(step: int, total_steps: int, base_lr: float, schedule: str = "multistep",
                  milestones: tuple[float, ...] = (0.5, 0.75), gamma: float = 0.1, warmup_steps: int = 0) -> float:
    """The learning rate at iteration ``step`` (0-based) of ``total_steps``.

    multistep: base_lr * gamma**k after k of the milestones (fractions of the run: 0.5 and
               0.75 are the paper's epochs 80 and 120 of 160).
    cosine:    base_lr * (1 + cos(pi * step / total_steps)) / 2.
    constant:  base_lr.
    warmup_steps > 0 ramps linearly from base_lr / warmup_steps up to the schedule's value.
    """
    if schedule == "multistep":
        lr = base_lr * gamma ** sum(step >= round(m * total_steps) for m in milestones)
    elif schedule == "cosine":
        lr = base_lr * (1 + math.cos(math.pi * step / total_steps)) / 2
    elif schedule == "constant":
        lr = base_lr
    else:
        raise ValueError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    if step < warmup_steps:
        lr *= (step + 1) / warmup_steps
    return lr
