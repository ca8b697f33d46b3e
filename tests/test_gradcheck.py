"""Every op and layer passes a float64 gradient check; the checker catches a wrong backward."""
import numpy as np
import pytest

import minibn
from minibn.checks import all_checks
from minibn.tensor import Function

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
