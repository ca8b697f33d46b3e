"""Tensor, Function and the backward engine: the whole of minibn's autograd.

A Tensor holds an array (``.data``) of the current backend. Calling an op runs a
``Function``: its ``forward`` computes on arrays and saves what ``backward`` will
need on a ``Context``. The output Tensor remembers that context, and so the graph
is built as the program runs. ``Tensor.backward()`` walks that graph from the
output back to the leaves, calls each ``backward`` once, and adds the gradients
into the leaves' ``.grad`` arrays.

A Tensor may hold an (N, C, H, W) batch in the fast paths' flat layout (``layout`` set; see
minibn/fast.py): ops written for that layout take it as it is, and ``Function.apply`` hands any
other op its (N, C, H, W) form.
"""
from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import numpy as np

from minibn import backend, leaf_grads
from minibn.profiler import profiler

if TYPE_CHECKING:
    from minibn.fast_cpu.layout import FlatLayout

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
        self.parents: tuple[Tensor, ...] = ()
        self.grad_outs: tuple = ()  # set by the engine just before backward: see grad_out

    def save_for_backward(self, *arrays) -> None:
        if self.requires_grad:  # under no_grad, or with frozen inputs only, keep nothing alive
            self.saved = tuple(read_only(a) for a in arrays)

    def grad_out(self, i: int):
        """Where backward may write input i's gradient (``out=`` of its last operation), or None: see
        minibn/leaf_grads.py. Returning a new array instead is always correct."""
        return self.grad_outs[i] if i < len(self.grad_outs) else None


def read_only(array):
    """On NumPy, a read-only view of ``array`` (no copy: a few hundred nanoseconds); anything else as it is.

    The engine hands these to backward, so that a backward that writes into its gradient or into what
    forward saved fails at that line instead of corrupting another branch's gradient. CuPy has no
    read-only arrays: there the contract rests on the ops (the NumPy suite runs every one of them through
    these views) and, for students' code, on the grader (minibn.gradcheck compares the gradient it handed
    with its own copy).
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

    ``backward`` returns one gradient per array input of ``forward``, each of that
    input's shape, or None for inputs with ``ctx.needs_input_grad[i]`` False.

    The contract of a backward: it never writes into the gradient it receives, nor into the
    arrays that forward saved; it returns new arrays (or the gradient itself, unchanged).
    The same gradient array may go to several places (Add.backward hands both branches of a
    residual add the very same array), so a backward that did ``g *= mask`` would corrupt
    the other branch's gradient without any error. On NumPy the engine enforces this: it
    hands backward read-only views (no copy), and a write raises BackwardContractError. On
    CuPy arrays cannot be made read-only and the contract is not checked while training;
    ``minibn.gradcheck`` checks it there too. A leaf's ``.grad`` is always its own array.

    ``flat_inputs`` says what the op does with an input in the fast path's flat layout (a Tensor
    whose ``layout`` is set; see minibn/fast.py):
      "nchw"         it gets it back in (N, C, H, W) first: most ops index, reshape or reduce;
      "elementwise"  it runs on the flat arrays as they are when every input has the same layout,
                     and so does its output: an elementwise op that maps zeros to zero keeps the
                     layout's pads zero (add, sub, mul, neg, relu);
      "flat"         it is written for the flat layout (minibn/fast_cpu, minibn/fast_gpu.py).
    """

    flat_inputs = "nchw"

    @staticmethod
    def forward(ctx: Context, *arrays, **options):
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Context, grad):
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs, **options) -> "Tensor":
        dtype = next(x.dtype for x in inputs if isinstance(x, Tensor))
        # constants (Python numbers, arrays) take the dtype of the tensor operands
        tensors = tuple(x if isinstance(x, Tensor) else Tensor(backend.to_device(x, dtype)) for x in inputs)
        layout = None
        if cls.flat_inputs != "flat" and any(t.layout is not None for t in tensors):
            tensors, layout = _take_flat_inputs(cls, tensors)
        needs = tuple(_grad_enabled and t.requires_grad for t in tensors)
        ctx = Context(needs)
        with profiler.timing(cls, "forward"):
            out = Tensor(cls.forward(ctx, *(t._data for t in tensors), **options))
        out.layout = layout
        if ctx.requires_grad:
            out.requires_grad = True
            out._ctx = ctx
            ctx.fn, ctx.parents = cls, tensors
        return out


def _take_flat_inputs(cls, tensors):
    """The inputs as ``cls`` takes them, and its output's layout: flat inputs stay flat only for an
    elementwise op whose inputs all share one layout; otherwise they go back to (N, C, H, W)."""
    layouts = {t.layout for t in tensors}
    if cls.flat_inputs == "elementwise" and len(layouts) == 1:
        return tensors, layouts.pop()
    return tuple(t if t.layout is None else t.layout.to_nchw(t) for t in tensors), None


class Tensor:
    """An n-dimensional array that can record the ops applied to it.

    ``Tensor(array, requires_grad=False)``: ``array`` is copied to the current backend
    if it is not there already; its dtype is kept (float32 for training, float64 for
    gradient checks). After ``loss.backward()``, a leaf with ``requires_grad`` has its
    gradient in ``.grad``, a plain array of its own shape.
    """

    __array_priority__ = 1000  # so that numpy_array * tensor calls Tensor.__rmul__

    def __init__(self, data, requires_grad: bool = False):
        layout = None
        if isinstance(data, Tensor):
            data, layout = data._data, data.layout
        if not backend.is_cupy_array(data):
            data = backend.to_device(data)
        self._data = data  # the array as stored: see ``data`` and ``layout``
        self.grad = None
        self.requires_grad = requires_grad
        self._ctx: Context | None = None  # set on outputs of ops that need a backward
        # None: the array is stored as it is. A FlatLayout: an (N, C, H, W) batch stored in the fast path's
        # flat layout, as a (C, length) array (minibn/fast_cpu/layout.py), which only ops and tensor.py see
        self.layout: FlatLayout | None = layout

    # ---- array-like properties -------------------------------------------------
    @property
    def data(self):
        """The array, of ``shape``; for a tensor stored in the flat layout, an (N, C, H, W) view of it."""
        return self._data if self.layout is None else self.layout.nchw_view(self._data)

    @data.setter
    def data(self, array) -> None:
        self._data, self.layout = array, None

    @property
    def shape(self) -> tuple[int, ...]:
        if self.layout is not None:
            return self.layout.nchw_shape(self._data.shape[0])
        return tuple(self._data.shape)

    @property
    def dtype(self):
        return self._data.dtype

    @property
    def ndim(self) -> int:
        return self._data.ndim if self.layout is None else 4

    @property
    def size(self) -> int:
        return int(self._data.size) if self.layout is None else int(np.prod(self.shape))

    def numpy(self) -> np.ndarray:
        """A NumPy copy of the data (from the GPU if need be)."""
        return backend.to_host(self.data)

    def item(self) -> float:
        return self.data.item()

    def to_nchw(self) -> "Tensor":
        """This tensor stored as an ordinary array: itself, or, from the flat layout, converted (FromFlat)."""
        return self if self.layout is None else self.layout.to_nchw(self)

    def detach(self) -> "Tensor":
        """The same data, cut off from the graph."""
        return Tensor(self)

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({self.numpy()!r}{grad})"

    def __len__(self) -> int:
        return self.shape[0]

    # ---- the backward engine ----------------------------------------------------
    def backward(self, grad=None) -> None:
        """Add d(self)/d(leaf) . grad into ``leaf.grad`` for every leaf that requires a gradient.

        ``grad`` is the upstream gradient, of self's shape; it may be omitted for a
        one-element tensor (a loss), where it is 1.
        """
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad: "
                               "no input of the ops that made it had requires_grad=True")
        if self.layout is not None:  # the upstream gradient is (N, C, H, W), like the shape
            return self.to_nchw().backward(grad)
        xp = backend.array_module(self._data)
        if grad is None:
            if self.size != 1:
                raise RuntimeError(f"backward() without a gradient needs a one-element tensor, "
                                   f"got shape {self.shape}; pass grad= of that shape")
            grad = xp.ones_like(self._data)
        grad = grad.data if isinstance(grad, Tensor) else xp.asarray(grad, dtype=self.dtype)
        _check_shape(grad, self.shape, "the upstream gradient", "backward()")

        grads = {id(self): grad}
        handed_out: set[int] = set()  # leaves whose grad_buffer a backward may already have written
        for node in reversed(_topological_order(self)):
            node_grad = grads.pop(id(node))
            if node._ctx is None:
                leaf_grads.accumulate(node, node_grad)
                continue
            ctx, fn = node._ctx, node._ctx.fn
            if ctx.saved is None:
                raise RuntimeError("backward through the same graph a second time: "
                                   "its saved arrays were freed; run the forward again")
            ctx.grad_outs = tuple(leaf_grads.free_buffer(parent, handed_out) if needed else None
                                  for parent, needed in zip(ctx.parents, ctx.needs_input_grad))
            with profiler.timing(fn, "backward"):
                try:
                    input_grads = fn.backward(ctx, read_only(node_grad))
                except ValueError as error:  # NumPy's "... is read-only": the contract above was broken
                    if "read-only" in str(error):
                        raise BackwardContractError(fn.__name__) from error
                    raise
            if not isinstance(input_grads, tuple):
                input_grads = (input_grads,)
            ctx.saved = None  # free what forward kept, as soon as it has been used
            for parent, needed, parent_grad in zip(ctx.parents, ctx.needs_input_grad, input_grads):
                if not needed:
                    continue
                _check_shape(parent_grad, parent._data.shape, "gradient", f"{fn.__name__}.backward")
                key = id(parent)
                grads[key] = parent_grad if key not in grads else grads[key] + parent_grad
            ctx.parents = ()  # and let go of the inputs: the activations die with the last use, not with the loss

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


def _check_shape(grad, shape, what, where) -> None:
    if tuple(grad.shape) != tuple(shape):
        raise RuntimeError(f"{where} returned a {what} of shape {tuple(grad.shape)} "
                           f"for a tensor of shape {tuple(shape)}")


def _topological_order(root: Tensor) -> list[Tensor]:
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


from minibn import ops, shape_ops  # noqa: E402  (their ops subclass Function, defined above)
