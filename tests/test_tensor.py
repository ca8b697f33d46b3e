"""The autograd engine: accumulation, broadcasting, deep graphs, no_grad, shape checks, freeing."""
import numpy as np
import pytest

import minibn
from minibn import Tensor, no_grad
from minibn.tensor import Context, Function
from tests.conftest import host


def test_value_used_twice_gets_both_gradients():
    x = Tensor(np.array([3.0]), requires_grad=True)
    y = x * x + x  # dy/dx = 2x + 1 = 7
    y.backward()
    assert host(x.grad) == pytest.approx([7.0])


def test_gradients_accumulate_across_backward_calls():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    (x * 2).sum().backward()
    (x * 3).sum().backward()
    assert host(x.grad) == pytest.approx([5.0, 5.0])


def test_broadcasting_is_undone_in_backward():
    a = Tensor(np.ones((2, 3, 4)), requires_grad=True)
    b = Tensor(np.ones((3, 1)), requires_grad=True)
    (a * b).sum().backward()
    assert b.grad.shape == (3, 1)
    assert host(b.grad) == pytest.approx(np.full((3, 1), 8.0))


def test_scalar_constants_keep_float32():
    x = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    y = (x * 2.5 + 1) / 3
    assert y.dtype == np.float32


def test_chain_of_20000_ops_does_not_recurse():
    x = Tensor(np.array([1.0]), requires_grad=True)
    y = x
    for _ in range(20_000):
        y = y * 1.0001
    y.backward()
    assert host(x.grad)[0] == pytest.approx(1.0001 ** 20_000)


def test_no_grad_builds_no_graph_and_saves_nothing():
    x = Tensor(np.ones(3), requires_grad=True)
    with no_grad():
        y = x.exp()
    assert not y.requires_grad and y._ctx is None
    assert minibn.is_grad_enabled()


def test_frozen_inputs_build_no_graph():
    x = Tensor(np.ones(3))
    y = (x * 2).exp()
    assert not y.requires_grad and y._ctx is None


def test_only_needed_gradients_are_computed():
    calls = []

    class Spy(Function):
        @staticmethod
        def forward(ctx, a, b):
            return a * b

        @staticmethod
        def backward(ctx, g):
            calls.append(ctx.needs_input_grad)
            return (g if ctx.needs_input_grad[0] else None), (g if ctx.needs_input_grad[1] else None)

    a, b = Tensor(np.ones(2), requires_grad=True), Tensor(np.ones(2))
    Spy.apply(a, b).sum().backward()
    assert calls == [(True, False)] and b.grad is None


def test_saved_arrays_are_freed_after_backward():
    x = Tensor(np.ones(3), requires_grad=True)
    y = x.exp()
    ctx = y._ctx
    assert ctx.saved
    y.sum().backward()
    assert ctx.saved is None
    with pytest.raises(RuntimeError, match="second time"):
        y.sum().backward()


def test_wrong_gradient_shape_is_a_readable_error():
    class BadShape(Function):
        @staticmethod
        def forward(ctx, a):
            return a * 2

        @staticmethod
        def backward(ctx, g):
            return g.sum(axis=0)

    x = Tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"BadShape.backward returned a gradient of shape \(3,\) "
                                           r"for a tensor of shape \(2, 3\)"):
        BadShape.apply(x).sum().backward()


def test_backward_needs_grad_for_non_scalar():
    x = Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(RuntimeError, match="one-element"):
        (x * 2).backward()


def test_tensor_api():
    x = Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    assert x.shape == (2, 3) and x.ndim == 2 and x.dtype == np.float64
    assert isinstance(x.numpy(), np.ndarray)
    assert not x.detach().requires_grad
    assert x.T.shape == (3, 2) and x.reshape(3, 2).shape == (3, 2)
    assert x[0].shape == (3,)
    assert host((x.max(axis=1)).data).tolist() == [2.0, 5.0]


def test_context_saves_nothing_when_no_gradient_is_needed():
    ctx = Context((False,))
    ctx.save_for_backward(np.ones(3))
    assert ctx.saved == ()


def test_numpy_integer_index_is_basic_indexing():
    """a[np.int64(1)] is a view, as a[1] is: no index array on the device, no scatter in backward."""
    a = Tensor(np.arange(12.0).reshape(3, 4), requires_grad=True)
    out = a[np.int64(1), 1:]
    assert all(not hasattr(part, "shape") or isinstance(part, np.integer) for part in out._ctx.index)
    out.sum().backward()
    assert host(a.grad).tolist() == [[0, 0, 0, 0], [0, 1, 1, 1], [0, 0, 0, 0]]
