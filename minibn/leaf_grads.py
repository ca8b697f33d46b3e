"""Where the backward pass puts a leaf's gradient: in ``.grad``, and, if an optimizer keeps the parameter's
gradient in an array of its own (``grad_buffer``: minibn/fast/sgd.py's FlatSGD sets it, a view of one
flat gradient array), in that array.

Plain training never sets a ``grad_buffer``: then each leaf's gradient is a fresh array of its own, as in
PyTorch. Where one is set, an op's backward may write the parameter's gradient straight there:
``ctx.grad_destination(i)`` hands it the array (as the ``out=`` of its last operation) when input i is a
leaf whose gradient this backward pass has not written yet. Otherwise the gradient is copied in once it
is complete.
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
