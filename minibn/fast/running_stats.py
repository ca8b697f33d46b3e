"""BatchNorm's running statistics, updated for every layer at once when the model's forward returns.

    running_mean = (1 - momentum) running_mean + momentum mean
    running_var  = (1 - momentum) running_var  + momentum M/(M-1) var     (unbiased, as PyTorch)

Why at once: on a GPU each array operation costs the host 10-30 us, and updating one layer's two buffers
takes 7 of them; a ResNet-20 has 21 BatchNorms, so 147 a step for 42 small vectors. Instead, while a
module's forward runs, each BatchNorm op only hands its batch statistics over (``defer``). When the
outermost module call returns (nn.Module.__call__), ``flush`` updates them all: the running buffers of
those BatchNorm2d layers are views into one stacked array, [means of every layer, variances of every
layer], and one update of that array does the work: 4 operations a step, whatever the depth.

The buffers read the same as before (``bn.running_mean`` is a view of the stacked array); only inside the
forward pass do they still hold the previous step's values. Outside a module call (``F.batch_norm`` on
its own), or for arrays that are no BatchNorm2d's buffers, the update is immediate.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

from minibn.backend import array_module


@dataclass
class _Batch:
    running_mean: object
    running_var: object
    mean: object
    var: object
    m: int
    momentum: float


_state = threading.local()  # per thread: depth of module calls and the statistics handed over


def _pending() -> list[_Batch]:
    if not hasattr(_state, "pending"):
        _state.depth, _state.pending = 0, []
    return _state.pending


def update_now(running_mean, running_var, mean, var, m: int, momentum: float) -> None:
    """The update of one layer, in place (7 operations)."""
    running_mean *= 1 - momentum
    running_mean += momentum * mean
    running_var *= 1 - momentum
    running_var += momentum * var * (m / (m - 1))


def defer(running_mean, running_var, mean, var, m: int, momentum: float) -> bool:
    """Hand one layer's batch statistics over for the update at the end of the module call; False (the
    caller updates now) when no module call is running."""
    pending = _pending()
    if not _state.depth:
        return False
    pending.append(_Batch(running_mean, running_var, mean, var, m, momentum))
    return True


def enter() -> None:
    _pending()
    _state.depth += 1


def leave(module) -> None:
    """End of a module call: at the outermost one, update every running statistic handed over in it."""
    _state.depth -= 1
    if _state.depth == 0 and _state.pending:
        from minibn.profiler import profiler
        batches, _state.pending = _state.pending, []
        with profiler.timing("BatchNorm running statistics", "update", module=__name__):
            flush(module, batches)


class _Stacked:
    """The running statistics of some BatchNorm2d layers as views into one array: [means..., variances...]."""

    def __init__(self, layers: list, batches: list[_Batch]):
        xp = array_module(batches[0].running_mean)
        self.running = xp.concatenate([b.running_mean for b in batches] + [b.running_var for b in batches])
        sizes = [b.running_mean.size for b in batches]
        offset = 0
        for layer, size in zip(layers, sizes):  # the layers' buffers become views of the stacked array
            layer.register_buffer("running_mean", self.running[offset:offset + size])
            layer.register_buffer("running_var", self.running[sum(sizes) + offset:sum(sizes) + offset + size])
            offset += size
        self.buffers = [(layer.running_mean, layer.running_var) for layer in layers]  # also keeps their ids in use
        self.key = tuple(id(a) for pair in self.buffers for a in pair)
        self.coefficients: dict[tuple, tuple] = {}

    def update(self, batches: list[_Batch]) -> None:
        xp = array_module(self.running)
        rates = tuple((b.m, b.momentum) for b in batches)
        if rates not in self.coefficients:  # made once per batch size (the last batch of an epoch may differ)
            keep = [1 - b.momentum for b in batches for _ in range(b.running_mean.size)]
            add = ([b.momentum for b in batches for _ in range(b.running_mean.size)]
                   + [b.momentum * b.m / (b.m - 1) for b in batches for _ in range(b.running_mean.size)])
            same = len(set(keep)) == 1  # one momentum for all: a scalar, no array
            self.coefficients[rates] = (keep[0] if same else xp.asarray(keep + keep, dtype=self.running.dtype),
                                        xp.asarray(add, dtype=self.running.dtype))
        keep, add = self.coefficients[rates]
        batch = xp.concatenate([b.mean for b in batches] + [b.var for b in batches])
        self.running *= keep
        self.running += add * batch


_stacks: dict[tuple, _Stacked] = {}


def flush(module, batches: list[_Batch]) -> None:
    """Update the running statistics of ``batches``: in one stacked update for those that are buffers of
    BatchNorm2d layers inside ``module`` (the first time, their buffers become views of one array), one by
    one for the others."""
    from minibn.nn import BatchNorm2d
    key = tuple(id(a) for b in batches for a in (b.running_mean, b.running_var))
    stacked = _stacks.get(key)
    if stacked is None:
        owners = {id(layer.running_mean): layer for layer in module.modules() if isinstance(layer, BatchNorm2d)}
        layers = [owners.get(id(b.running_mean)) for b in batches]
        same_kind = len({(type(b.running_mean).__module__, b.running_mean.dtype) for b in batches}) == 1
        if any(layer is None or layer.running_var is not b.running_var for layer, b in zip(layers, batches)) \
                or len(set(map(id, layers))) != len(layers) or not same_kind:
            for b in batches:  # not (only) BatchNorm2d buffers, each once: no stacking
                update_now(b.running_mean, b.running_var, b.mean, b.var, b.m, b.momentum)
            return
        stacked = _Stacked(layers, batches)
        if len(_stacks) >= 8:  # models come and go (tests, benchmarks): keep the latest few
            _stacks.pop(next(iter(_stacks)))
        _stacks[stacked.key] = stacked
    stacked.update(batches)
