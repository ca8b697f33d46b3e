"""Tensor: an array that records the ops applied to it, and has the operators of an array.

A Tensor holds an array (``.data``) of the current backend. Its operators and methods (``+``, ``@``,
``.sum()``, ``.relu()``...) each apply one op of ops.py or shape_ops.py, and ``backward()`` runs the
engine of autograd.py, which adds the gradients into the leaves' ``.grad`` arrays.
"""
from __future__ import annotations

import numpy as np

from minibn import autograd, backend, ops, shape_ops
from minibn.autograd import BackwardContractError, Context, Function, is_grad_enabled, no_grad, read_only
from minibn.profiler import profiler

__all__ = ["Tensor", "Function", "Context", "BackwardContractError", "no_grad", "is_grad_enabled", "read_only",
           "profiler"]


class Tensor:
    """An n-dimensional array that can record the ops applied to it.

    ``Tensor(array, requires_grad=False)``: ``array`` is copied to the current backend
    if it is not there already; its dtype is kept (float32 for training, float64 for
    gradient checks). After ``loss.backward()``, a leaf with ``requires_grad`` has its
    gradient in ``.grad``, a plain array of its own shape.
    """

    __array_priority__ = 1000  # so that numpy_array * tensor calls Tensor.__rmul__

    def __init__(self, data, requires_grad: bool = False):
        if isinstance(data, Tensor):
            data = data.data
        if not backend.is_cupy_array(data):
            data = backend.to_device(data)
        self._data = data  # the array as the ops see it: ``data`` for a Tensor, see Tensor.as_input_of
        self.grad = None
        self.requires_grad = requires_grad
        self._ctx: Context | None = None  # set on outputs of ops that need a backward

    # ---- how ops see a tensor (autograd.Function.apply calls these) -------------------------
    def as_input_of(self, op: type[Function], inputs: tuple) -> "Tensor":
        """The tensor that ``op`` (applied to ``inputs``) gets for this one: itself. A subclass that stores its
        array in another form hands an op it was not written for a converted tensor instead."""
        return self

    def constant(self, value) -> "Tensor":
        """A constant operand of an op (a Python number, an array), in this tensor's dtype."""
        return Tensor(backend.to_device(value, self.dtype))

    def result(self, op: type[Function], array) -> "Tensor":
        """The output of ``op``, which got this tensor as its first tensor input."""
        return Tensor(array)

    # ---- array-like properties -------------------------------------------------
    @property
    def data(self):
        return self._data

    @data.setter
    def data(self, array) -> None:
        self._data = array

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._data.shape)

    @property
    def dtype(self):
        return self._data.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def numpy(self) -> np.ndarray:
        """A NumPy copy of the data (from the GPU if need be)."""
        return backend.to_host(self.data)

    def item(self) -> float:
        return self.data.item()

    def detach(self) -> "Tensor":
        """The same data, cut off from the graph."""
        return Tensor(self)

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({self.numpy()!r}{grad})"

    def __len__(self) -> int:
        return self.shape[0]

    def backward(self, grad=None) -> None:
        """Add d(self)/d(leaf) . grad into ``leaf.grad`` for every leaf that requires a gradient.

        ``grad`` is the upstream gradient, of self's shape; it may be omitted for a
        one-element tensor (a loss), where it is 1.
        """
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad: "
                               "no input of the ops that made it had requires_grad=True")
        xp = backend.array_module(self._data)
        if grad is None:
            if self.size != 1:
                raise RuntimeError(f"backward() without a gradient needs a one-element tensor, "
                                   f"got shape {self.shape}; pass grad= of that shape")
            grad = xp.ones_like(self._data)
        grad = grad.data if isinstance(grad, Tensor) else xp.asarray(grad, dtype=self.dtype)
        autograd.check_shape(grad, self.shape, "the upstream gradient", "backward()")
        autograd.backward(self, grad)

    # ---- operators and methods: each is one Function from ops.py or shape_ops.py --
    def __add__(self, other): return ops.Add.apply(self, other)
    def __radd__(self, other): return ops.Add.apply(other, self)
    def __sub__(self, other): return ops.Sub.apply(self, other)
    def __rsub__(self, other): return ops.Sub.apply(other, self)
    def __mul__(self, other): return ops.Mul.apply(self, other)
    def __rmul__(self, other): return ops.Mul.apply(other, self)
    def __truediv__(self, other): return ops.Div.apply(self, other)
    def __rtruediv__(self, other): return ops.Div.apply(other, self)
    def __neg__(self): return ops.Neg.apply(self)
    def __pow__(self, exponent: float): return ops.Pow.apply(self, exponent=exponent)
    def __matmul__(self, other): return ops.MatMul.apply(self, other)
    def __getitem__(self, index): return shape_ops.GetItem.apply(self, index=index)

    def exp(self): return ops.Exp.apply(self)
    def log(self): return ops.Log.apply(self)
    def sqrt(self): return ops.Sqrt.apply(self)
    def relu(self): return ops.ReLU.apply(self)

    def sum(self, axis=None, keepdims=False): return shape_ops.Sum.apply(self, axis=axis, keepdims=keepdims)
    def mean(self, axis=None, keepdims=False): return shape_ops.Mean.apply(self, axis=axis, keepdims=keepdims)
    def max(self, axis=None, keepdims=False): return shape_ops.Max.apply(self, axis=axis, keepdims=keepdims)

    def reshape(self, *shape):
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        return shape_ops.Reshape.apply(self, shape=tuple(shape))

    def transpose(self, *axes):
        axes = axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
        return shape_ops.Transpose.apply(self, axes=tuple(axes) if axes else None)

    @property
    def T(self): return self.transpose()

    def pad(self, pad_width, value=0.0):
        return shape_ops.Pad.apply(self, pad_width=pad_width, value=value)
