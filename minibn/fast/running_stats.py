"""BatchNorm's running statistics of a whole model in one array, updated in 4 operations a training step.

Why: on a GPU each array operation costs the host 10-30 us, and batchnorm.update_running_stats takes 7 of
them for one layer's two buffers; a ResNet-20 has 21 BatchNorms, so 147 a step for 42 small vectors.

How (opt-in: ``stack(model)``, which ``minibn train`` calls on CuPy with the ``packed_sgd`` switch on): the
running buffers of the model's BatchNorm2d layers become views of one array, [means of every layer,
variances of every layer], once, before training; from then on they are the same arrays for the module's
life. In a training forward of the model (between a forward pre-hook and a forward hook), the GPU's
BatchNorm hands its batch statistics over (``update``), and when the model's forward returns one update
of the stacked array does every layer: batchnorm.update_running_stats's formula, line by line, with each
element's own momentum and M:

    running_mean *= 1 - momentum                  running *= keep          keep = 1 - momentum
    running_mean += momentum * mean               running += add * batch   add = momentum for a mean,
    running_var  *= 1 - momentum                                                 momentum M/(M-1) for a var
    running_var  += momentum * var * (M/(M-1))

So a reference to ``bn.running_mean`` taken after ``stack`` sees every training forward's update once that
forward has returned (inside the forward, the buffers still hold the previous step's values).
A BatchNorm run outside the model's forward updates at once; statistics of a forward that raised are dropped.
"""
from __future__ import annotations

import numpy as np

from minibn.backend import array_module
from minibn.batchnorm import update_running_stats
from minibn.nn import BatchNorm2d
from minibn.profiler import profiler


class Stack:
    """The running statistics of some BatchNorm2d layers as views into one array: [means..., variances...]."""

    def __init__(self, layers: list):
        xp = array_module(layers[0].running_mean)
        self.running = xp.concatenate([b.running_mean for b in layers] + [b.running_var for b in layers])
        sizes = [layer.running_mean.size for layer in layers]
        offset, total = 0, sum(sizes)
        for layer, size in zip(layers, sizes):  # the layers' buffers become views of the stacked array
            layer.register_buffer("running_mean", self.running[offset:offset + size])
            layer.register_buffer("running_var", self.running[total + offset:total + offset + size])
            offset += size
        self.buffers = [(layer.running_mean, layer.running_var) for layer in layers]
        self.pending: list = [None] * len(layers)  # (mean, var, m, momentum) of each layer in this forward
        self.in_forward = False
        self.coefficients: dict[tuple, tuple] = {}

    def start(self, module, args) -> None:
        """The forward pre-hook: from here to the end of the model's forward, the statistics wait (a forward
        that raised left some behind: dropped)."""
        self.pending, self.in_forward = [None] * len(self.pending), True

    def flush(self, module, args, output) -> None:
        """The forward hook: update every layer whose statistics were handed over in this forward."""
        self.in_forward = False
        with profiler.timing("BatchNorm running statistics", "update", module=__name__):
            self._update()

    def _update(self) -> None:
        pending, self.pending = self.pending, [None] * len(self.pending)
        if any(p is None for p in pending):  # some layer did not run (or ran outside the model): one by one
            for (running_mean, running_var), p in zip(self.buffers, pending):
                if p is not None:
                    update_running_stats(running_mean, running_var, *p)
            return
        xp = array_module(self.running)
        rates = tuple((m, momentum) for _, _, m, momentum in pending)
        if rates not in self.coefficients:  # made once per batch size (the last batch of an epoch may differ)
            sizes = [mean.size for mean, _ in self.buffers]  # each layer's value, repeated over its channels:
            keep = np.repeat([1 - momentum for _, momentum in rates], sizes)
            add = np.concatenate([np.repeat([momentum for _, momentum in rates], sizes),
                                  np.repeat([momentum * m / (m - 1) for m, momentum in rates], sizes)])
            same = bool(np.all(keep == keep[0]))  # one momentum for all: a scalar, no array
            self.coefficients[rates] = (float(keep[0]) if same else xp.asarray(np.concatenate([keep, keep]),
                                                                                dtype=self.running.dtype),
                                        xp.asarray(add, dtype=self.running.dtype))
        keep, add = self.coefficients[rates]
        batch = xp.concatenate([p[0] for p in pending] + [p[1] for p in pending])
        self.running *= keep
        self.running += add * batch


_slots: dict[int, tuple[Stack, int]] = {}  # id of a stacked running_mean -> its stack and layer index
_stacks: list[Stack] = []  # the latest few (models come and go: tests, benchmarks); each keeps its ids in use


def stack(model) -> None:
    """Stack the running statistics of ``model``'s BatchNorm2d layers (see the module docstring); once."""
    layers = [m for m in model.modules() if isinstance(m, BatchNorm2d)]
    if not layers or id(layers[0].running_mean) in _slots:
        return
    if len({(type(b.running_mean), b.running_mean.dtype) for b in layers}) != 1:
        return  # mixed arrays: each layer keeps its own buffers
    stacked = Stack(layers)
    for index, (running_mean, _) in enumerate(stacked.buffers):
        _slots[id(running_mean)] = (stacked, index)
    _stacks.append(stacked)
    if len(_stacks) > 8:  # a forgotten stack's layers simply update one by one again
        for running_mean, _ in _stacks.pop(0).buffers:
            del _slots[id(running_mean)]
    model.register_forward_pre_hook(stacked.start)
    model.register_forward_hook(stacked.flush)


def update(running_mean, running_var, mean, var, m: int, momentum: float) -> None:
    """batchnorm.update_running_stats, or, for stacked buffers, handed over to the model's forward hook."""
    slot = _slots.get(id(running_mean))
    if slot is None or slot[0].buffers[slot[1]][0] is not running_mean or not slot[0].in_forward:
        update_running_stats(running_mean, running_var, mean, var, m, momentum)
        return
    if m < 2:
        raise ValueError("batch_norm in training mode needs more than one value per channel")
    slot[0].pending[slot[1]] = (mean, var, m, momentum)
