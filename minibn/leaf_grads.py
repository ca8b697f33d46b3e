"""Where the backward pass puts a leaf's gradient: in ``.grad``, and if the leaf is a parameter that an
optimizer keeps in a flat buffer (optim.FlatGroup), in its ``grad_buffer``, a view of the flat gradient.

An op's backward may write a parameter's gradient straight there: ``ctx.grad_out(i)`` hands it the view
(as the ``out=`` of its last operation) when input i is a parameter whose gradient this backward pass
has not written yet. Otherwise the gradient is copied in once it is complete. Either way SGD then finds
every gradient in one array, and the common case (BatchNorm's dgamma and dbeta, Linear's and the GPU
conv's dW) costs no copy at all.
"""
from __future__ import annotations


def free_buffer(tensor, handed_out: set[int]):
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
