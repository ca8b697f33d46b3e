"""Where the backward pass puts a leaf's gradient: in ``.grad``, a fresh array of its own as in PyTorch, or,
where an optimizer keeps the gradient in an array of its own (``grad_buffer``, set only by the opt-in
minibn/fast/sgd.py), in that array: an op's backward may write it there directly (the ``out=`` that
``ctx.grad_destination(i)`` hands it), else it is copied in once complete.
"""
from __future__ import annotations


def destination(tensor, handed_out: set[int]):
    """The leaf's grad_buffer if this backward pass has not handed it out yet and .grad is empty, else None."""
    buffer = getattr(tensor, "grad_buffer", None)
    if buffer is None or tensor._ctx is not None or tensor.grad is not None or id(tensor) in handed_out \
            or buffer.dtype != tensor.dtype:
        return None
    handed_out.add(id(tensor))
    return buffer


def accumulate(leaf, grad) -> None:
    """Add ``grad`` into ``leaf.grad`` (a tensor used twice gets both parts). The leaf's gradient is its own
    array: its grad_buffer if it has one, else a copy (the array handed over may also be another leaf's, or
    the caller's grad=)."""
    if leaf.grad is not None:
        grad = leaf.grad + grad
    buffer = getattr(leaf, "grad_buffer", None)
    if buffer is not None and buffer.dtype == leaf.dtype:
        if grad is not buffer:  # the op did not write it there: one copy
            buffer[...] = grad
        grad = buffer
    elif leaf.grad is None:
        grad = grad.copy()
    leaf.grad = grad
