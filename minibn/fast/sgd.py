"""SGD over packed buffers: every trainable parameter, gradient, mask and momentum buffer of one dtype as a view
into one array, so that a step is a handful of array operations whatever the depth.

Why: on a GPU every array operation costs the host 10-30 us whatever its size, and a ResNet-20 in BN-only
mode has 42 small trainable tensors. Updated one by one, SGD makes about 6 operations each, 252 a step;
over the packed arrays it makes 6 (optim.sgd_update, the same formula, on the packed arrays). With the
parameters' ``grad_buffer`` set, BatchNorm's and the conv's backward write their weight gradients
straight into the packed gradient (minibn/leaf_grads.py): no copies either.

The price, and why it is opt-in (the ``packed_sgd`` switch; ``minibn train`` uses it on CuPy): each
parameter's ``.data`` becomes a view into the packed array at the first step, and ``.grad`` is that view of
the packed gradient, rewritten by every backward, where PyTorch gives a fresh gradient after
``zero_grad``. Its textbook twin is optim.SGD (tests/test_optim.py compares them).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from minibn.backend import array_module
from minibn.optim import SGD

if TYPE_CHECKING:
    from minibn.nn import Parameter


class ParameterPack:
    """Parameters of one dtype, with their gradients, masks and momentum buffers, as views into four
    contiguous arrays: ``data``, ``grad``, ``mask`` (None if no parameter has one) and ``momentum``.

    Each parameter's ``.data`` and ``.mask`` become views into the packed arrays (same values), and its
    ``.grad_buffer`` the view of the packed gradient where the backward pass writes its gradient.
    """

    def __init__(self, indexed: list[tuple[int, Parameter]], momentum_buffers: dict):
        first = indexed[0][1].data
        xp, dtype = array_module(first), first.dtype
        total = sum(p.size for _, p in indexed)
        self.indices = tuple(i for i, _ in indexed)
        self.params = [p for _, p in indexed]
        self.data, self.grad = xp.empty(total, dtype), xp.zeros(total, dtype)
        self.momentum = xp.zeros(total, dtype)
        self.mask = xp.ones(total, dtype) if any(p.mask is not None for p in self.params) else None
        self.momentum_views, offset = {}, 0
        for i, p in indexed:
            def view(packed, start=offset, p=p):
                return packed[start:start + p.size].reshape(p.shape)
            view(self.data)[...] = p.data
            p.data, p.grad_buffer = view(self.data), view(self.grad)
            if p.mask is not None:
                view(self.mask)[...] = p.mask
                p.mask = view(self.mask)
            self.momentum_views[i] = view(self.momentum)
            if i in momentum_buffers:  # a buffer from before (a rebuilt group, or a loaded state)
                self.momentum_views[i][...] = momentum_buffers[i]
                momentum_buffers[i] = self.momentum_views[i]
            offset += p.size
        self._views = [(p.data, p.mask) for p in self.params]

    def holds(self, indexed: list[tuple[int, Parameter]]) -> bool:
        """True if these are still the group's parameters and still views into its arrays (Module.to,
        load_state_dict's new masks or a change of trainable set make a new group)."""
        return (tuple(i for i, _ in indexed) == self.indices
                and all(p.data is data and p.mask is mask for p, (data, mask) in zip(self.params, self._views)))

    def collect_grads(self) -> None:
        """Copy into the packed gradient any gradient that did not land there (one set by hand)."""
        for p in self.params:
            if p.grad is not p.grad_buffer:
                p.grad_buffer[...] = p.grad
                p.grad = p.grad_buffer


class PackedSGD(SGD):
    """optim.SGD over packed buffers (ParameterPack, one per dtype). A trainable parameter without a gradient
    (unused in the graph) is skipped, as in PyTorch: then the step goes parameter by parameter, through the
    same views."""

    def __init__(self, params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0):
        super().__init__(params, lr, momentum, weight_decay)
        self._groups: dict[object, ParameterPack] = {}  # dtype -> the packed buffers of its trainable parameters

    def step(self) -> None:
        for group in self._packs():
            if self._one_update_fits(group):
                group.collect_grads()
                first = group.indices[0] not in self.momentum_buffers
                self.update(group.data, group.grad, group.mask, group.momentum, first)
                if self.momentum:
                    self.momentum_buffers.update(group.momentum_views)
                continue
            for i, p in zip(group.indices, group.params):  # optim.SGD's step, through the packed views
                if p.grad is not None:
                    self.update(p.data, p.grad, p.mask, group.momentum_views[i], first=i not in self.momentum_buffers)
                    if self.momentum:
                        self.momentum_buffers[i] = group.momentum_views[i]

    def _one_update_fits(self, group: ParameterPack) -> bool:
        """True if one update of the packed arrays is every parameter's own update: each has a gradient (one
        without must not move, as in PyTorch), and all are at the same step, since ``first`` is one flag for
        the pack: all have a momentum buffer, or none has (the first step)."""
        started = {i in self.momentum_buffers for i in group.indices}  # {True}, {False}, or both
        return all(p.grad is not None for p in group.params) and len(started) == 1

    def _packs(self) -> list[ParameterPack]:
        """The packs of the trainable parameters, rebuilt when those or their arrays changed."""
        by_dtype: dict[object, list] = {}
        for i, p in enumerate(self.params):
            if p.requires_grad:
                by_dtype.setdefault(p.data.dtype, []).append((i, p))
        if by_dtype.keys() != self._groups.keys() or not all(
                self._groups[dtype].holds(indexed) for dtype, indexed in by_dtype.items()):
            for p in self.params:
                p.grad_buffer = None
            self._groups = {dtype: ParameterPack(indexed, self.momentum_buffers) for dtype, indexed in by_dtype.items()}
        return list(self._groups.values())

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self._groups = {}  # rebuilt at the next step, with these buffers copied in
