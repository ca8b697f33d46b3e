"""Device operations per training step, counted with the CuPy stand-in: on a GPU at CIFAR size each one
costs the host 10-30 us, more than its arithmetic, so their number bounds the step (minibn/opcount.py).

These run where the suite runs on the stand-in (tests/test_cupy_standin.py starts that run on every CI run).
"""
import pytest

from minibn.opcount import step_counts
from tests.conftest import STANDIN

pytestmark = pytest.mark.skipif(not STANDIN, reason="counts device operations with the CuPy stand-in "
                                                    "(run by tests/test_cupy_standin.py)")


def test_counts_do_not_depend_on_the_batch_size():
    small, large = step_counts(8, "bn", batch_size=4, eval_batch_size=4), step_counts(8, "bn", batch_size=16,
                                                                                       eval_batch_size=32)
    assert small["train"].by_op == large["train"].by_op and small["eval"].total == large["eval"].total


@pytest.mark.parametrize("mode", ["bn", "all", "random"])
def test_sgd_step_is_a_few_operations_whatever_the_depth(mode):
    shallow, deep = step_counts(8, mode, batch_size=2)["train"], step_counts(20, mode, batch_size=2)["train"]
    assert shallow.by_op["SGD step"] == deep.by_op["SGD step"] <= 7, (shallow.by_op, deep.by_op)


def test_gradients_land_in_the_flat_buffer_without_copies():
    """BN-only: BatchNorm's backward writes dgamma and dbeta into the optimizer's flat gradient, so the engine
    copies none of the 42 gradients of a ResNet-20: what it does is the loss's seed and one gradient sum per
    residual block (the block's input feeds two paths)."""
    counts = step_counts(20, "bn", batch_size=2)["train"]
    assert counts.by_op["autograd and glue"] <= 1 + 9, counts.by_op


def test_running_statistics_update_in_a_few_operations_whatever_the_depth():
    shallow, deep = step_counts(8, "bn", batch_size=2)["train"], step_counts(20, "bn", batch_size=2)["train"]
    key = "BatchNorm running statistics update"
    assert shallow.by_op[key] == deep.by_op[key] <= 4, (shallow.by_op, deep.by_op)
