"""The autograd engine: Function (an op: forward and backward side by side), Context, and the backward pass.

``SomeOp.apply(x, y)`` runs ``SomeOp.forward`` on the arrays of its inputs and saves what ``backward``
will need on a ``Context``; the output remembers that context (``_ctx``), so the graph is built as the
program runs. ``backward(root)`` walks it from the output back to the leaves, calls each op's
``backward`` once, and adds the gradients into the leaves' ``.grad``. This file imports no op and no
Tensor (an op's output is made by the tensor it was applied to: ``Tensor.result``), so that tensor.py
can import the ops that its ``+``, ``@``, ``.sum()`` stand for.
"""
from __future__ import annotations

import contextlib

import numpy as np

from minibn import leaf_grads
from minibn.profiler import profiler

_grad_enabled = True


@contextlib.contextmanager
def no_grad():
    """Inside this block ops build no graph and save nothing (use it for evaluation)."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous


def is_grad_enabled() -> bool:
    return _grad_enabled


class Context:
    """What one op call keeps for its backward: saved arrays and which inputs need gradients."""

    def __init__(self, needs_input_grad: tuple[bool, ...]):
        self.needs_input_grad = needs_input_grad
        self.requires_grad = any(needs_input_grad)
        self.saved: tuple = ()
        self.fn: type[Function] | None = None  # the op, and its inputs: set once the output needs a backward
        self.parents: tuple = ()
        self.grad_destinations: tuple = ()  # set by the engine just before backward: see grad_destination

    def save_for_backward(self, *arrays) -> None:
        if self.requires_grad:  # under no_grad, or with frozen inputs only, keep nothing alive
            self.saved = tuple(read_only(a) for a in arrays)

    def grad_destination(self, i: int):
        """An array where backward may write input i's gradient (the ``out=`` of its last operation), or
        None: set where an optimizer keeps a parameter's gradient in an array of its own (minibn/leaf_grads.py).
        Returning a new array instead is always correct."""
        return self.grad_destinations[i] if i < len(self.grad_destinations) else None


def read_only(array):
    """On NumPy, a read-only view of ``array`` (no copy: a few hundred nanoseconds); anything else as it is.

    The engine hands these to backward, so that a backward that writes into its gradient or into what
    forward saved fails at that line (BackwardContractError). CuPy has no read-only arrays: there the
    contract rests on the ops, which the NumPy suite runs through these views.
    """
    if type(array) is not np.ndarray:
        return array
    view = array.view()
    view.flags.writeable = False
    return view


class BackwardContractError(RuntimeError):
    """A backward wrote into the gradient it received or into an array that forward saved."""

    def __init__(self, op: str, what: str = "a read-only array (the gradient it received, or an array forward saved)"):
        super().__init__(
            f"{op}.backward wrote into {what}: a backward must return new arrays and leave its inputs alone "
            "(write g * mask, not g *= mask). In a network the same gradient array often goes to two places (a "
            "residual add hands both branches the same one), so the write would silently corrupt the other branch")


class Function:
    """An op: a ``forward(ctx, *arrays, **options)`` and a ``backward(ctx, grad)`` side by side.

    ``backward`` returns one gradient per array input of ``forward``, each of that input's shape, or
    None for inputs with ``ctx.needs_input_grad[i]`` False. Its contract: it returns new arrays (or the
    gradient itself, unchanged) and never writes into the gradient it receives nor into what forward
    saved, since one gradient array may go to several places (read_only, BackwardContractError).
    """

    @staticmethod
    def forward(ctx: Context, *arrays, **options):
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Context, grad):
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs, **options):
        """Run the op on ``inputs`` (tensors, and constants: Python numbers or arrays) and record it.

        A tensor is what has a graph slot ``_ctx`` (this file cannot import Tensor, which imports the ops).
        Each tensor says how the op takes it (``as_input_of``: itself, for a Tensor), and the first one
        makes the constants' tensors and, as the op got it, the output (``result``)."""
        first = next(x for x in inputs if hasattr(x, "_ctx"))
        tensors = tuple(x.as_input_of(cls, inputs) if hasattr(x, "_ctx") else first.constant(x) for x in inputs)
        maker = next(t for t, x in zip(tensors, inputs) if x is first)
        ctx = Context(tuple(_grad_enabled and t.requires_grad for t in tensors))
        with profiler.timing(cls, "forward"):
            out = maker.result(cls, cls.forward(ctx, *(t._data for t in tensors), **options))
        if ctx.requires_grad:
            out.requires_grad = True
            out._ctx = ctx
            ctx.fn, ctx.parents = cls, tensors
        return out


def backward(root, grad) -> None:
    """Add d(root)/d(leaf) . grad into ``leaf.grad`` for every leaf under ``root`` that requires a gradient."""
    grads = {id(root): grad}
    handed_out: set[int] = set()  # leaves whose gradient destination a backward may already have written
    for node in reversed(_topological_order(root)):
        node_grad = grads.pop(id(node))
        if node._ctx is None:
            leaf_grads.accumulate(node, node_grad)
            continue
        for parent, parent_grad in _input_grads(node._ctx, node_grad, handed_out):
            key = id(parent)
            grads[key] = parent_grad if key not in grads else grads[key] + parent_grad


def _input_grads(ctx: Context, grad, handed_out: set[int]):
    """Run one op's backward: (input, its gradient) for each input that needs one. Frees what forward saved."""
    fn = ctx.fn
    if ctx.saved is None:
        raise RuntimeError("backward through the same graph a second time: "
                           "its saved arrays were freed; run the forward again")
    ctx.grad_destinations = tuple(leaf_grads.destination(parent, handed_out) if needed else None
                                  for parent, needed in zip(ctx.parents, ctx.needs_input_grad))
    with profiler.timing(fn, "backward"):
        try:
            input_grads = fn.backward(ctx, read_only(grad))
        except ValueError as error:  # NumPy's "... is read-only": the contract above was broken
            if "read-only" in str(error):
                raise BackwardContractError(fn.__name__) from error
            raise
    if not isinstance(input_grads, tuple):
        input_grads = (input_grads,)
    parents, needs = ctx.parents, ctx.needs_input_grad
    ctx.saved, ctx.parents = None, ()  # free what forward kept, and the inputs: activations die with their last use
    pairs = [(parent, g) for parent, needed, g in zip(parents, needs, input_grads) if needed]
    for parent, g in pairs:
        check_shape(g, parent._data.shape, "gradient", f"{fn.__name__}.backward")
    return pairs


def check_shape(grad, shape, what, where) -> None:
    if tuple(grad.shape) != tuple(shape):
        raise RuntimeError(f"{where} returned a {what} of shape {tuple(grad.shape)} "
                           f"for a tensor of shape {tuple(shape)}")


def _topological_order(root) -> list:
    """Tensors of the graph under ``root``, each after all its inputs (iterative DFS,
    so a graph thousands of ops deep does not hit Python's recursion limit)."""
    order, visited = [], set()
    stack = [(root, False)]
    while stack:
        node, inputs_done = stack.pop()
        if inputs_done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        if node._ctx is not None:
            for parent, needed in zip(node._ctx.parents, node._ctx.needs_input_grad):
                if needed and id(parent) not in visited:
                    stack.append((parent, False))
    return order
