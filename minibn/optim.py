"""SGD with momentum and weight decay, and learning-rate schedules stepped per iteration."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Iterable

from minibn import registry
from minibn.backend import array_module, to_device

if TYPE_CHECKING:
    from minibn.nn import Parameter


def sgd_update(param, grad, mask, buffer, first: bool, lr: float, momentum: float, weight_decay: float) -> None:
    """PyTorch's SGD (no dampening, no Nesterov) on one array, in place:

        d = grad + weight_decay * param       (L2 added to the gradient)
        d = d * mask                          (random mode: only unmasked elements move)
        buffer = d on the first step, then momentum * buffer + d
        param = param - lr * buffer

    ``mask`` may be None (no mask) and ``buffer`` None when momentum is 0.
    """
    d = grad + weight_decay * param if weight_decay else grad
    if mask is not None:
        d = d * mask
    if momentum:
        if first:
            buffer[...] = d
        else:
            buffer *= momentum
            buffer += d
        d = buffer
    param -= lr * d


class SGD:
    """PyTorch's SGD over the trainable parameters (see sgd_update for the formula), one parameter at a time.

    Parameters with requires_grad False are skipped: no momentum, no decay. A trainable parameter without
    a gradient (unused in the graph) is skipped too, as in PyTorch. ``step`` updates each ``p.data`` in
    place and never touches ``p.grad``.
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
            if p.requires_grad and p.grad is not None:
                first = i not in self.momentum_buffers
                if self.momentum and first:
                    self.momentum_buffers[i] = array_module(p.data).empty_like(p.data)  # set to d by the update
                elif self.momentum and self.momentum_buffers[i].dtype != p.dtype:  # the model was cast (Module.to)
                    self.momentum_buffers[i] = self.momentum_buffers[i].astype(p.dtype)
                self.update(p.data, p.grad, p.mask, self.momentum_buffers.get(i), first)

    def update(self, param, grad, mask, buffer, first: bool) -> None:
        """sgd_update with this optimizer's settings, or its fast version (a single CuPy kernel)."""
        settings = (first, self.lr, self.momentum, self.weight_decay)
        if registry.run_fast("sgd_update", param, grad, mask, buffer, *settings) is None:
            sgd_update(param, grad, mask, buffer, *settings)

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
