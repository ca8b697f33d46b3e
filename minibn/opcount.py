"""How many device operations a training step makes: what a GPU step at CIFAR size waits for.

Each CuPy call that does work on the device (an elementwise op, a reduction, a GEMM, a copy, a
gather, an allocation) costs the host roughly 10-30 us of Python and launch work, whatever the
size of its arrays. A ResNet-20 step at batch 128 is about 21 GFLOP, a fraction of a millisecond of
arithmetic on a data-centre GPU, so the number of calls, not the arithmetic, sets its time.

The strict CuPy stand-in of the tests (tests/standin) counts these operations; a real CuPy has no
such counter, so there ``count_device_ops`` returns None. Each operation is attributed to the op
that made it ("Conv2d forward", "BatchNorm backward", "SGD step"), or to "autograd and glue" (the
engine's gradient sums, the loss's seed gradient, the step's accuracy count).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from minibn import backend
from minibn.profiler import profiler
from minibn.tensor import Tensor, no_grad

UNATTRIBUTED = "autograd and glue"


@dataclass
class OpCount:
    """Device operations of one call: the total, by minibn op and phase, and by kind of array operation."""
    total: int
    by_op: dict[str, int] = field(default_factory=dict)
    by_kind: dict[str, int] = field(default_factory=dict)


def counting_available() -> bool:
    """True where device operations can be counted: on CuPy's strict stand-in."""
    module = backend.xp()
    return module.__name__ == "cupy" and hasattr(module, "count_ops")


def count_device_ops(call: Callable[[], object]) -> OpCount | None:
    """Run ``call()`` once and count its device operations; None where they cannot be counted."""
    if not counting_available():
        return None
    cupy = backend.xp()
    with _labelled_by_op(cupy), cupy.count_ops() as counted:
        call()
    by_op = {(UNATTRIBUTED if label is None else label): n for label, n in counted.by_label.most_common()}
    return OpCount(counted.total, by_op, dict(counted.by_kind.most_common()))


@contextlib.contextmanager
def _labelled_by_op(cupy):
    """Label each operation with the op running it: the engine opens profiler.timing(op, phase) around
    every forward and backward (and bench around SGD.step), so that is where the label goes."""
    profiler.timing = lambda op, phase, module="": cupy.op_label(
        f"{op if isinstance(op, str) else op.__name__} {phase}")
    try:
        yield
    finally:
        del profiler.timing  # the class's method again


def step_counts(depth: int, mode: str, batch_size: int = 8, eval_batch_size: int = 8,
                image_size: int = 32) -> dict[str, OpCount | None]:
    """Device operations of one ResNet training step (forward, backward, SGD) and of one evaluation forward,
    each after a first one (which also makes the momentum buffers and what ops keep between calls). The counts do not depend on the batch
    sizes (tests/test_op_counts.py checks it), so a small batch is enough."""
    from minibn.bench import minibn_training_step
    model, train_step = minibn_training_step(depth, mode, batch_size, image_size=image_size)
    train_step()
    train = count_device_ops(train_step)
    images = Tensor(np.random.default_rng(1).standard_normal((eval_batch_size, 3, image_size, image_size))
                    .astype(np.float32))

    def eval_forward():
        with no_grad():
            model(images)
    model.eval()
    eval_forward()  # the first also makes what is kept from call to call (fast/gpu.py's scratch matrices, masks)
    evaluation = count_device_ops(eval_forward)
    model.train()
    return {"train": train, "eval": evaluation}
