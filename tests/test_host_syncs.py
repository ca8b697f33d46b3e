"""The training loop never waits for the GPU inside a step, and once per logging interval between steps.

A host sync (reading a number back, printing a device array, a boolean mask...) stalls the GPU
until all queued work is done. These tests count them with the CuPy stand-in, so they run where the
suite runs on it (tests/test_cupy_standin.py starts that run on every CI run).
"""
import numpy as np
import pytest

import minibn.train
from minibn.data import load_sample
from minibn.train import TrainConfig
from tests.conftest import STANDIN

pytestmark = pytest.mark.skipif(not STANDIN, reason="counts host syncs with the CuPy stand-in "
                                                    "(run by tests/test_cupy_standin.py)")


@pytest.fixture
def counted(monkeypatch):
    """Wrap train_step, _train_epoch and evaluate to record the syncs each call makes."""
    import cupy  # the stand-in
    calls = {"train_step": [], "_train_epoch": [], "evaluate": []}
    for name, record in calls.items():
        real = getattr(minibn.train, name)

        def counting(*args, _real=real, _record=record, **kwargs):
            before = cupy.sync_count()
            result = _real(*args, **kwargs)
            _record.append(cupy.sync_count() - before)
            return result
        monkeypatch.setattr(minibn.train, name, counting)
    return calls, cupy


def test_no_sync_inside_a_step_and_one_per_logging_interval(counted, tmp_path, monkeypatch):
    calls, cupy = counted
    monkeypatch.setattr(minibn.train, "LOG_EVERY", 3)
    data = load_sample().subset(500, 100)
    config = TrainConfig(depth=8, width=4, epochs=2, batch_size=50, data="sample", train="all")
    minibn.train.run(config, data, tmp_path / "run")
    steps_per_epoch = 10
    assert len(calls["train_step"]) == 2 * steps_per_epoch
    assert calls["train_step"] == [0] * 20, f"syncs inside training steps: {cupy.sync_log()[-10:]}"
    log_points = len(range(3, steps_per_epoch + 1, 3)) + 1  # every 3rd step, and the epoch's last
    assert calls["_train_epoch"] == [log_points, log_points], cupy.sync_log()[-10:]
    assert calls["evaluate"] == [1, 1], "evaluation reads its sums back once"


def test_eval_mode_forward_makes_no_sync():
    import cupy
    from minibn import Tensor, no_grad
    from minibn.models import cifar_resnet
    model = cifar_resnet(8, width=4).eval()
    images = Tensor(np.random.default_rng(0).standard_normal((4, 3, 16, 16)).astype(np.float32))
    before = cupy.sync_count()
    with no_grad():
        model(images)
    assert cupy.sync_count() == before, cupy.sync_log()[-5:]
