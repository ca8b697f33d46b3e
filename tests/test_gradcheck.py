"""Every op and layer passes a float64 gradient check; the checker catches a wrong backward."""
import numpy as np
import pytest

import minibn
from minibn import backend
from minibn.backend import array_module
from minibn.checks import all_checks
from minibn.tensor import BackwardContractError, Function
from tests.conftest import BACKEND, host

CHECKS = all_checks()


@pytest.mark.parametrize("check", CHECKS, ids=[c.name for c in CHECKS])
def test_op_gradient(check):
    results = minibn.gradcheck(check.fn, check.inputs, names=check.names, max_elements=check.max_elements)
    for r in results:
        assert r.passed, f"{check.name} / {r.name}: worst {r.worst_index} backward {r.analytic} numeric {r.numeric}"


class TransposedMatMul(Function):
    """A deliberately wrong backward: da is transposed (right shape for square inputs, wrong values)."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a @ b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved
        return (g @ b.T).T, a.T @ g


class SquareForgotTwo(Function):
    """d(x^2)/dx written as x instead of 2x: a typical student mistake."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        return g * x


def test_checker_fails_on_a_wrong_backward():
    rng = np.random.default_rng(0)
    (result,) = minibn.gradcheck(SquareForgotTwo.apply, [rng.standard_normal((3, 4))])
    assert not result.passed
    assert result.max_rel_err > 0.1


def test_checker_fails_on_a_transposed_gradient():
    rng = np.random.default_rng(1)
    results = minibn.gradcheck(TransposedMatMul.apply, [rng.standard_normal((3, 3)), rng.standard_normal((3, 3))])
    assert not results[0].passed and results[1].passed


def test_checker_samples_large_inputs():
    rng = np.random.default_rng(0)
    (result,) = minibn.gradcheck(lambda x: x.exp(), [rng.standard_normal((50, 40))], max_elements=25)
    assert result.checked == 25 and result.passed


def test_checker_refuses_float32():
    x = minibn.Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    with pytest.raises(TypeError, match="float64"):
        minibn.gradcheck(lambda t: t * 2, [x])


def test_rel_error():
    assert minibn.rel_error([1.0], [1.0]) == 0
    assert minibn.rel_error([1.0], [3.0]) == pytest.approx(0.5)


class ReLUTimesTwoInPlace(Function):
    """relu written as ``g *= 2 * (x > 0)``: twice the right gradient, computed in the upstream gradient itself.
    It passed when the finite differences used the array the backward had just doubled."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return array_module(x).maximum(x, 0)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        g *= 2 * (x > 0)
        return g


def away_from_zero(shape, seed=0):
    x = np.random.default_rng(seed).standard_normal(shape)
    return x + np.sign(x) * 0.1


def test_a_backward_that_writes_into_its_gradient_fails_the_check():
    with pytest.raises(BackwardContractError, match=r"ReLUTimesTwoInPlace.backward wrote into .*residual add"):
        minibn.gradcheck(ReLUTimesTwoInPlace.apply, [away_from_zero((3, 4))])


@pytest.mark.skipif(BACKEND != "numpy", reason="read-only arrays exist on NumPy only")
def test_a_write_is_caught_even_where_the_array_was_made_writable_again():
    """The check compares the gradient it handed with its own copy (what catches a write on CuPy)."""
    class Sneaky(ReLUTimesTwoInPlace):
        @staticmethod
        def backward(ctx, g):
            g.flags.writeable = True
            return ReLUTimesTwoInPlace.backward(ctx, g)
    with pytest.raises(BackwardContractError, match="Sneaky.backward wrote into the gradient it received"):
        minibn.gradcheck(Sneaky.apply, [away_from_zero((3, 4))])


@pytest.mark.skipif(BACKEND != "numpy", reason="the engine makes arrays read-only on NumPy only")
def test_in_a_residual_network_a_write_into_the_gradient_is_an_error_not_a_wrong_branch():
    """y = relu2(x) + x: Add.backward hands both branches one array. Writing into it in the relu branch
    used to double the skip branch's gradient too, silently."""
    x = minibn.Tensor(away_from_zero((3, 4)), requires_grad=True)
    y = ReLUTimesTwoInPlace.apply(x) + x
    with pytest.raises(BackwardContractError, match="ReLUTimesTwoInPlace.backward wrote into"):
        y.backward(np.ones((3, 4)))


@pytest.mark.skipif(BACKEND != "numpy", reason="the engine makes arrays read-only on NumPy only")
def test_a_backward_cannot_write_into_what_forward_saved():
    class ClobbersSaved(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * 3

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved
            x[...] = 3  # reuses the saved input as its output array
            return x * g
    x = minibn.Tensor(np.ones((2, 2)), requires_grad=True)
    with pytest.raises(BackwardContractError, match="ClobbersSaved.backward"):
        ClobbersSaved.apply(x).sum().backward()
    assert np.all(x.data == 1)


def test_each_leaf_gets_its_own_gradient_array():
    a, b = (minibn.Tensor(np.ones((2, 3)), requires_grad=True) for _ in range(2))
    upstream = backend.to_device(np.arange(6.0).reshape(2, 3))
    (a + b).backward(upstream)
    a.grad *= 10  # gradient clipping, say: must not touch b's gradient, nor the caller's array
    assert host(b.grad).tolist() == host(upstream).tolist() == [[0, 1, 2], [3, 4, 5]]
