"""`minibn train` and `minibn eval` end to end on fake data: logs, checkpoints, faults and resume."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

import minibn.nn
import minibn.train
from minibn.cli import main
from tests.conftest import BACKEND
from tests.fake_cifar import make_fake_cifar

TINY = ["--backend", BACKEND, "--depth", "8", "--width", "4", "--batch-size", "50", "--epochs", "2"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    make_fake_cifar(root)
    return str(root)


def train(*args):
    return CliRunner().invoke(main, ["train", *args], catch_exceptions=False)


def test_train_writes_config_metrics_checkpoint_and_summary(data_dir, tmp_path):
    out = tmp_path / "run"
    result = train(*TINY, "--train", "all", "--data-dir", data_dir, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "best test accuracy" in result.output and "|gamma| < 0.01" in result.output
    config = json.loads((out / "config.json").read_text())
    assert config["depth"] == 8 and config["train"] == "all" and config["trainable_parameters"] > 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert set(records[0]) == {"epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "seconds",
                               "images_per_s", "gamma_below"}
    assert set(records[0]["gamma_below"]) == {"0.01", "0.05", "0.1"}
    assert records[1]["train_loss"] < records[0]["train_loss"]
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["gamma_below"]) == {"0.01", "0.05", "0.1"}
    result = CliRunner().invoke(main, ["eval", str(out / "checkpoint.npz"), "--backend", BACKEND,
                                       "--data-dir", data_dir])
    assert result.exit_code == 0 and f"{records[-1]['test_acc']:.2%}" in result.output


@pytest.mark.parametrize("option, value", [("--depth", "21"), ("--batch-size", "0"), ("--epochs", "0"),
                                           ("--train", "gamma"), ("--lr", "-1"), ("--width", "0")])
def test_invalid_options_are_usage_errors(option, value):
    result = train(option, value)
    assert result.exit_code == 2 and "Invalid value" in result.output and "Traceback" not in result.output


def test_depth_error_names_valid_depths():
    assert "valid depths are 8, 14, 20" in train("--depth", "21").output


def test_missing_data_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr("urllib.request.urlopen", lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    result = train(*TINY, "--data", "cifar10", "--data-dir", str(tmp_path / "none"), "--out", str(tmp_path / "r"))
    assert result.exit_code == 1 and result.output.count("\n") <= 2 and "could not be downloaded" in result.output


def test_existing_run_needs_resume(data_dir, tmp_path):
    out = str(tmp_path / "run")
    assert train(*TINY, "--epochs", "1", "--data-dir", data_dir, "--out", out).exit_code == 0
    result = train(*TINY, "--data-dir", data_dir, "--out", out)
    assert result.exit_code == 2 and "--resume" in result.output


def interrupt_at(monkeypatch, step):
    real_step, calls = minibn.train.train_step, []

    def step_then_interrupt(*args, **kwargs):
        calls.append(1)
        if len(calls) == step:
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)
    monkeypatch.setattr(minibn.train, "train_step", step_then_interrupt)


def weights(out):
    return dict(np.load(out / "checkpoint.npz"))


def test_interrupted_and_resumed_run_is_bit_identical(data_dir, tmp_path, monkeypatch):
    args = [*TINY, "--epochs", "3", "--train", "all", "--data-dir", data_dir]
    straight = tmp_path / "straight"
    assert train(*args, "--out", str(straight)).exit_code == 0

    resumed = tmp_path / "resumed"
    interrupt_at(monkeypatch, step=7)  # mid-epoch 2 (4 steps per epoch)
    result = train(*args, "--out", str(resumed))
    assert result.exit_code == 130 and "continue with --resume" in result.output
    monkeypatch.undo()
    result = train("--resume", "--out", str(resumed), "--backend", BACKEND, "--data-dir", data_dir)
    assert result.exit_code == 0, result.output

    a, b = weights(straight), weights(resumed)
    model_keys = [k for k in a if k.startswith(("model/", "optimizer/"))]
    assert model_keys and all(np.array_equal(a[k], b[k]) for k in model_keys)
    log = [json.loads(line) for line in (resumed / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2, 3]


def test_resume_refuses_a_different_option(data_dir, tmp_path):
    out = str(tmp_path / "run")
    assert train(*TINY, "--epochs", "1", "--data-dir", data_dir, "--out", out).exit_code == 0
    result = train("--resume", "--out", out, "--depth", "14", "--data-dir", data_dir)
    assert result.exit_code == 2 and "--depth 14 differs" in result.output
    result = train("--resume", "--out", out, "--train", "all", "--data-dir", data_dir)
    assert result.exit_code == 2 and "--train all differs from the run being resumed (bn)" in result.output


def test_a_warmup_longer_than_the_run_is_a_usage_error(tmp_path):
    result = train(*TINY, "--warmup-epochs", "1e308", "--data", "sample", "--out", str(tmp_path / "run"))
    said = " ".join(result.output.split())
    assert result.exit_code == 2 and "--warmup-epochs 1e+308 is longer than the run (--epochs 2)" in said
    assert not (tmp_path / "run").exists()


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(data_dir, tmp_path, monkeypatch):
    args = [*TINY, "--train", "all", "--data-dir", data_dir]  # 4 steps per epoch
    reference = tmp_path / "reference"
    interrupt_at(monkeypatch, step=5)  # stops right after epoch 1: its checkpoint is the last good one
    assert train(*args, "--out", str(reference)).exit_code == 130
    monkeypatch.undo()

    real_step, calls = minibn.train.train_step, []

    def nan_in_epoch_two(*a, **k):
        calls.append(1)
        loss, correct = real_step(*a, **k)
        return (loss * float("nan") if len(calls) > 4 else loss), correct
    monkeypatch.setattr(minibn.train, "train_step", nan_in_epoch_two)
    out = tmp_path / "run"
    result = train(*args, "--out", str(out))
    assert result.exit_code == 1 and "loss became nan in epoch 2" in result.output
    assert "Traceback" not in result.output
    good, kept = weights(reference), weights(out)
    assert all(np.array_equal(good[k], kept[k]) for k in good if k.startswith("model/"))
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1


def test_corrupt_checkpoint_is_a_clear_error(data_dir, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.npz").write_bytes(b"not a zip file")
    result = train("--resume", "--out", str(out), "--data-dir", data_dir)
    assert result.exit_code == 1 and "not a readable minibn checkpoint" in result.output
    result = CliRunner().invoke(main, ["eval", str(out / "checkpoint.npz")])
    assert result.exit_code == 1 and "not a readable minibn checkpoint" in result.output


def test_sample_data_runs_and_resumes_without_cifar(tmp_path, monkeypatch):
    args = [*TINY, "--epochs", "1", "--data", "sample", "--subset", "200", "--test-subset", "50",
            "--out", str(tmp_path / "run")]
    interrupt_at(monkeypatch, step=3)  # 4 steps in the epoch
    result = train(*args)
    assert result.exit_code == 130 and "bundled sample" in result.output
    monkeypatch.undo()
    result = train("--resume", "--out", str(tmp_path / "run"), "--backend", BACKEND)
    assert result.exit_code == 0, result.output
    assert "resuming" in result.output and "best test accuracy" in result.output


def test_eval_without_cifar_says_it_evaluates_on_the_sample(tmp_path, monkeypatch):
    out = tmp_path / "run"
    assert train(*TINY, "--epochs", "1", "--data", "sample", "--subset", "100", "--test-subset", "10",
                 "--out", str(out)).exit_code == 0
    monkeypatch.setenv("MINIBN_DATA", str(tmp_path / "no-cifar"))  # and no ~/.cache/minibn either
    monkeypatch.setenv("HOME", str(tmp_path))
    result = CliRunner().invoke(main, ["eval", str(out / "checkpoint.npz"), "--backend", BACKEND])
    said = " ".join(result.output.split())  # as one line, whatever the terminal's width
    assert result.exit_code == 0 and "evaluating on the bundled sample's 200 test images" in said
    assert "training on" not in said


def test_out_of_memory_suggests_a_smaller_batch(data_dir, tmp_path, monkeypatch):
    def out_of_memory(*args, **kwargs):
        raise MemoryError
    monkeypatch.setattr(minibn.train, "run", out_of_memory)
    result = train(*TINY, "--data-dir", data_dir, "--out", str(tmp_path / "run"))
    assert result.exit_code == 1 and "try --batch-size 25" in result.output
    result = train(*TINY, "--batch-size", "2", "--data-dir", data_dir, "--out", str(tmp_path / "run2"))
    said = " ".join(result.output.split())
    assert result.exit_code == 1 and "out of memory even at batch size 2, the smallest there is" in said
    assert "--batch-size" not in said and "--backend numpy" in said


def test_out_of_memory_when_resuming_or_evaluating(data_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"
    assert train(*TINY, "--epochs", "1", "--data-dir", data_dir, "--out", str(out)).exit_code == 0

    def out_of_memory(*args, **kwargs):
        raise MemoryError
    monkeypatch.setattr(minibn.train, "run", out_of_memory)
    monkeypatch.setattr(minibn.train, "evaluate", out_of_memory)
    result = train("--resume", "--out", str(out), "--data-dir", data_dir)
    said = " ".join(result.output.split())
    assert result.exit_code == 1 and "out of memory at batch size 50, which a resumed run keeps" in said
    for size, advice in (("4", "try --batch-size 2"), ("1", "out of memory even at batch size 1, the smallest")):
        result = CliRunner().invoke(main, ["eval", str(out / "checkpoint.npz"), "--data-dir", data_dir,
                                           "--batch-size", size])
        assert result.exit_code == 1 and advice in " ".join(result.output.split()), result.output


def test_a_crash_while_saving_leaves_the_old_checkpoint_whole(data_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"
    assert train(*TINY, "--epochs", "1", "--data-dir", data_dir, "--out", str(out)).exit_code == 0
    before = (out / "checkpoint.npz").read_bytes()

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # as if the process died in the middle of writing
    monkeypatch.setattr(np, "savez", killed)
    with pytest.raises(KeyboardInterrupt):
        minibn.save({"x": np.ones(3)}, str(out / "checkpoint.npz"))
    assert (out / "checkpoint.npz").read_bytes() == before
    assert [p.name for p in out.iterdir() if p.name.startswith(".tmp")] == []


def test_a_killed_run_resumes_from_its_last_checkpoint(data_dir, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    out = tmp_path / "run"
    command = [sys.executable, "-m", "minibn", "train", *TINY, "--epochs", "40", "--data-dir", data_dir,
               "--out", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    deadline = time.time() + 120
    while not (out / "checkpoint.npz").exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    process.send_signal(signal.SIGKILL)  # no chance to save: only what was written atomically survives
    process.wait()
    assert process.returncode == -signal.SIGKILL
    result = train("--resume", "--out", str(out), "--backend", BACKEND, "--data-dir", data_dir)
    assert result.exit_code == 0, result.output
    epochs = [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert epochs == list(range(1, 41))


def test_ctrl_c_during_evaluation_resumes_without_retraining(data_dir, tmp_path, monkeypatch):
    args = [*TINY, "--epochs", "2", "--train", "all", "--data-dir", data_dir]
    straight = tmp_path / "straight"
    assert train(*args, "--out", str(straight)).exit_code == 0
    real_evaluate, calls = minibn.train.evaluate, []

    def interrupted_evaluate(*a, **k):
        calls.append(1)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return real_evaluate(*a, **k)
    monkeypatch.setattr(minibn.train, "evaluate", interrupted_evaluate)
    out = tmp_path / "run"
    result = train(*args, "--out", str(out))
    assert result.exit_code == 130 and "epoch 1 at step 4" in result.output
    monkeypatch.undo()
    assert train("--resume", "--out", str(out), "--backend", BACKEND, "--data-dir", data_dir).exit_code == 0
    a, b = weights(straight), weights(out)
    assert all(np.array_equal(a[k], b[k]) for k in a if k.startswith("model/"))
