"""`minibn train --tensorboard` and `minibn sweep --tensorboard`, read back with TensorBoard's own reader."""
import json
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from minibn.analysis import gamma_by_stage
from minibn.cli import main
from minibn.checkpoint import model_from_checkpoint
from tests.conftest import BACKEND

TINY = ["--backend", BACKEND, "--width", "4", "--batch-size", "50", "--data", "sample", "--subset", "200",
        "--test-subset", "50"]


def read_events(folder):
    """Scalars {tag: [(step, value)]} and histograms {tag: [(step, HistogramValue)]} of the event files in folder."""
    accumulator_module = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator",
                                             reason="reading the files back needs tensorboard (pip install tensorboard)")
    events = accumulator_module.EventAccumulator(str(folder), size_guidance={"scalars": 0, "histograms": 0})
    events.Reload()
    tags = events.Tags()
    scalars = {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in tags["scalars"]}
    histograms = {tag: [(e.step, e.histogram_value) for e in events.Histograms(tag)] for tag in tags["histograms"]}
    return scalars, histograms


@pytest.fixture(autouse=True)
def needs_the_writer():
    pytest.importorskip("tensorboardX", reason='the writer is an extra: pip install "minibn[tensorboard]"')


def test_train_logs_each_epoch_and_each_stage_gamma(tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["train", *TINY, "--depth", "8", "--epochs", "3", "--out", str(out),
                                       "--tensorboard"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    scalars, histograms = read_events(out)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    for field, tag in [("train_loss", "loss/train"), ("test_loss", "loss/test"), ("train_acc", "accuracy/train"),
                       ("test_acc", "accuracy/test"), ("lr", "learning_rate")]:
        assert [step for step, _ in scalars[tag]] == [1, 2, 3]
        assert [value for _, value in scalars[tag]] == pytest.approx([r[field] for r in records], rel=1e-6)
    assert [v for _, v in scalars["gamma_below/0.1"]] == pytest.approx([r["gamma_below"]["0.1"] for r in records])
    model, _ = model_from_checkpoint(out / "checkpoint.npz")
    for stage, gammas in gamma_by_stage(model).items():
        steps, last = zip(*histograms[f"abs_gamma/{stage.replace(' ', '_')}"])
        assert steps == (1, 2, 3)
        assert last[-1].num == len(gammas) and last[-1].max == pytest.approx(np.abs(gammas).max(), rel=1e-6)
        assert last[-1].min == pytest.approx(np.abs(gammas).min(), rel=1e-6)


def test_sweep_logs_every_run_for_one_logdir(tmp_path):
    out = tmp_path / "sweep"
    result = CliRunner().invoke(main, ["sweep", *TINY, "--depths", "8", "--modes", "bn,output", "--epochs", "1",
                                       "--out", str(out), "--tensorboard"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    for run in ("resnet8-bn-seed0", "resnet8-output-seed0"):
        scalars, histograms = read_events(out / run)
        assert [step for step, _ in scalars["accuracy/test"]] == [1] and "abs_gamma/stage_3" in histograms


def test_missing_writer_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    result = CliRunner().invoke(main, ["train", *TINY, "--depth", "8", "--out", str(tmp_path / "run"), "--tensorboard"])
    assert result.exit_code == 2 and 'pip install "minibn[tensorboard]"' in result.output
    assert not (tmp_path / "run").exists()
