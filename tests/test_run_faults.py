"""Run folders under faults: two writers, a full disk, torn logs, foreign or edited checkpoints, bad values."""
import builtins
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

import minibn.cli.train
import minibn.train
from minibn.cli import main
from tests.conftest import BACKEND
from tests.fake_cifar import make_fake_cifar
from tests.test_train import TINY, interrupt_at, train


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    make_fake_cifar(root)
    return str(root)


@pytest.fixture(scope="module")
def finished_run(data_dir, tmp_path_factory):
    """A one-epoch ResNet-8 run to copy from (each test edits its own copy)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    assert train(*TINY, "--epochs", "1", "--data-dir", data_dir, "--out", str(out)).exit_code == 0
    return out


def copy_of(run, tmp_path, name="run"):
    return shutil.copytree(run, tmp_path / name)


def records(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def error_lines(output):
    return [line for line in output.splitlines() if line.startswith("Error")]


def temporaries(out):
    return [p.name for p in out.iterdir() if p.name.startswith(".tmp")]


# ---- one writer per run folder ---------------------------------------------------------------------
def test_a_second_train_or_sweep_on_a_folder_in_use_names_the_first(data_dir, tmp_path):
    out = tmp_path / "sweep" / "resnet8-bn-seed0"  # also the folder a sweep of ResNet-8, bn, seed 0 writes
    common = ["--backend", BACKEND, "--batch-size", "50", "--data-dir", data_dir]
    first = subprocess.Popen([sys.executable, "-m", "minibn", "train", "--depth", "8", "--epochs", "200", *common,
                              "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    try:
        deadline = time.time() + 60
        while not (out / "config.json").exists() and time.time() < deadline:
            time.sleep(0.05)
        second = subprocess.run([sys.executable, "-m", "minibn", "train", "--depth", "8", "--epochs", "1", *common,
                                 "--out", str(out)], capture_output=True, text=True, timeout=60)
        assert second.returncode == 1 and "Traceback" not in second.stderr
        assert f"is being written by pid {first.pid}" in second.stderr and "minibn train" in second.stderr
        sweep = CliRunner().invoke(main, ["sweep", "--depths", "8", "--modes", "bn", "--epochs", "200", *common,
                                          "--out", str(out.parent)])
        assert sweep.exit_code == 1 and f"pid {first.pid}" in sweep.output
        assert first.poll() is None
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert [r["epoch"] for r in records(out)] == list(range(1, len(records(out)) + 1))  # one writer's log


def test_a_deleted_lock_file_lets_no_second_writer_in(data_dir, tmp_path):
    out = tmp_path / "run"
    common = ["--backend", BACKEND, "--batch-size", "50", "--data-dir", data_dir]
    first = subprocess.Popen([sys.executable, "-m", "minibn", "train", "--depth", "8", "--width", "4", "--epochs",
                              "200", *common, "--out", str(out)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    try:
        deadline = time.time() + 120
        while not (out / "checkpoint.npz").exists():
            assert time.time() < deadline and first.poll() is None
            time.sleep(0.05)
        (out / ".lock").unlink()  # what a user tidying up, or a student's script, may do
        second = subprocess.run([sys.executable, "-m", "minibn", "train", "--resume", *common, "--out", str(out)],
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == 1 and "Traceback" not in second.stderr
        assert f"{out} is being written by another process" in " ".join(second.stderr.split())
        assert first.poll() is None
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert [r["epoch"] for r in records(out)] == list(range(1, len(records(out)) + 1))  # one writer's log


@pytest.mark.parametrize("planted", ["symlink", "fifo"])
def test_a_lock_file_that_is_a_link_or_a_fifo_is_replaced_not_followed(data_dir, tmp_path, planted):
    victim = tmp_path / "victim.txt"
    victim.write_text("a student's work")
    out = tmp_path / "run"
    out.mkdir()
    if planted == "symlink":
        (out / ".lock").symlink_to(victim)
    else:
        os.mkfifo(out / ".lock")  # opening it to read or write would block
    result = train(*TINY, "--epochs", "1", "--data-dir", data_dir, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert victim.read_text() == "a student's work" and not (out / ".lock").exists()


def test_a_lock_that_is_a_folder_is_one_line(data_dir, tmp_path):
    out = tmp_path / "run"
    (out / ".lock").mkdir(parents=True)
    result = train(*TINY, "--epochs", "1", "--data-dir", data_dir, "--out", str(out))
    [error] = error_lines(result.output)
    assert result.exit_code == 1 and f"{out / '.lock'} is a folder" in " ".join(result.output.split())


def test_sweep_refuses_an_interrupted_run_of_other_settings(data_dir, tmp_path, monkeypatch):
    def sweep(batch_size):
        return CliRunner().invoke(main, ["sweep", "--backend", BACKEND, "--depths", "8", "--modes", "bn", "--epochs",
                                         "2", "--batch-size", batch_size, "--subset", "100", "--data-dir", data_dir,
                                         "--out", str(tmp_path)])
    interrupt_at(monkeypatch, step=3)
    assert sweep("50").exit_code == 1
    monkeypatch.undo()
    result = sweep("100")
    assert result.exit_code == 2 and "batch_size 50" in result.output and "batch_size 100" in result.output
    assert json.loads((tmp_path / "resnet8-bn-seed0" / "config.json").read_text())["batch_size"] == 50


def test_a_checkpoint_of_another_depth_is_refused(finished_run, data_dir, tmp_path):
    deeper = tmp_path / "deeper"
    assert train(*TINY, "--depth", "14", "--epochs", "1", "--data-dir", data_dir, "--out", str(deeper)).exit_code == 0
    out = copy_of(finished_run, tmp_path)
    shutil.copy(deeper / "checkpoint.npz", out / "checkpoint.npz")
    result = train("--resume", "--out", str(out), "--backend", BACKEND, "--data-dir", data_dir)
    assert result.exit_code == 1 and "is not the checkpoint of the run" in result.output
    assert "depth 14" in result.output and "config.json has depth 8" in result.output


# ---- faults leave nothing to repair --------------------------------------------------------------------
class DiskFull:
    """A file that takes half of what is written to it, then fails as a full disk does."""

    def __init__(self, file):
        self.file = file

    def write(self, data):
        self.file.write(data[:len(data) // 2])
        self.file.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self.file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()


def test_a_full_disk_while_logging_keeps_the_run_resumable(data_dir, tmp_path, monkeypatch):
    real_open = builtins.open

    def open_on_a_full_disk(file, mode="r", *args, **kwargs):
        """Writing the record of epoch 2 into a .jsonl file fills the disk."""
        opened = real_open(file, mode, *args, **kwargs)
        if str(file).endswith(".jsonl") and mode != "r" and "r" not in mode:
            class OnEpochTwo(DiskFull):
                def write(self, data):
                    text = data.decode() if isinstance(data, bytes) else data
                    return (super().write if '"epoch": 2' in text else self.file.write)(data)
            return OnEpochTwo(opened)
        return opened
    monkeypatch.setattr(builtins, "open", open_on_a_full_disk)
    out = tmp_path / "run"
    result = train(*TINY, "--data-dir", data_dir, "--out", str(out))
    assert result.exit_code == 1 and "Traceback" not in result.output
    [error] = error_lines(result.output)
    assert "metrics.jsonl (No space left on device)" in error and "checkpoint" in error and "--resume" in error
    monkeypatch.undo()
    assert [r["epoch"] for r in records(out)] == [1] and temporaries(out) == []
    result = train("--resume", "--out", str(out), "--backend", BACKEND, "--data-dir", data_dir)
    assert result.exit_code == 0, result.output
    assert [r["epoch"] for r in records(out)] == [1, 2]


def test_a_failed_checkpoint_write_keeps_the_last_good_one(data_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"
    real_savez, calls = np.savez, []

    def no_room_for_the_second(file, **arrays):
        calls.append(1)
        if len(calls) == 2:
            file.write(b"PK half a zip")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_savez(file, **arrays)
    monkeypatch.setattr(np, "savez", no_room_for_the_second)
    result = train(*TINY, "--data-dir", data_dir, "--out", str(out))
    assert result.exit_code == 1 and "Traceback" not in result.output
    [error] = error_lines(result.output)
    assert "checkpoint.npz (No space left on device)" in error and "after epoch 1) is kept" in error
    monkeypatch.undo()
    assert temporaries(out) == [] and json.loads(str(np.load(out / "checkpoint.npz")["meta"]))["progress"]["epoch"] == 1
    assert train("--resume", "--out", str(out), "--backend", BACKEND, "--data-dir", data_dir).exit_code == 0
    assert [r["epoch"] for r in records(out)] == [1, 2]


def test_a_torn_log_line_is_reported_by_plot_and_repaired_on_resume(data_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"
    interrupt_at(monkeypatch, step=5)  # epoch 1 done and saved
    assert train(*TINY, "--data-dir", data_dir, "--out", str(out)).exit_code == 130
    monkeypatch.undo()
    with open(out / "metrics.jsonl", "a") as log:
        log.write('{"epoch": 2, "lr": 0.0')  # a writer that died mid-line (an older minibn, or another program)
    result = CliRunner().invoke(main, ["plot", str(out), "--out", str(tmp_path / "curves.png")])
    assert result.exit_code == 0 and "metrics.jsonl: the last line is torn" in result.output
    result = train("--resume", "--out", str(out), "--backend", BACKEND, "--data-dir", data_dir)
    assert result.exit_code == 0 and "removed a torn last line" in result.output
    assert [r["epoch"] for r in records(out)] == [1, 2]


def test_stale_temporaries_are_removed_and_checkpoints_get_the_umask_mode(finished_run, data_dir, tmp_path):
    previous = os.umask(0o027)
    try:
        out = tmp_path / "run"
        assert train(*TINY, "--epochs", "1", "--data-dir", data_dir, "--out", str(out)).exit_code == 0
        assert (out / "checkpoint.npz").stat().st_mode & 0o777 == 0o640 == (out / "config.json").stat().st_mode & 0o777
    finally:
        os.umask(previous)
    out = copy_of(finished_run, tmp_path, "killed")
    (out / ".tmp-3f9a1c.npz").write_bytes(b"PK a save that was killed")
    result = train("--resume", "--out", str(out), "--backend", BACKEND, "--data-dir", data_dir)
    assert result.exit_code == 0 and "removed" in result.output and temporaries(out) == []


def test_a_read_only_run_folder_is_one_line(finished_run, data_dir, tmp_path):
    out = copy_of(finished_run, tmp_path)
    out.chmod(0o555)
    try:
        if os.access(out, os.W_OK):
            pytest.skip("this user writes into read-only folders (root)")
        result = train("--resume", "--out", str(out), "--data-dir", data_dir)
        assert result.exit_code == 1 and "cannot write in the run folder" in result.output
    finally:
        out.chmod(0o755)


# ---- one-line errors --------------------------------------------------------------------------------
def test_a_bad_out_fails_before_the_data_loads_and_leaves_no_folder(data_dir, tmp_path, monkeypatch):
    def no_data(*args):
        raise AssertionError("the data was loaded")
    monkeypatch.setattr(minibn.cli.train, "load_data", no_data)
    (tmp_path / "a-file").write_text("")
    result = train(*TINY, "--data-dir", data_dir, "--out", str(tmp_path / "a-file" / "run"))
    assert result.exit_code == 1 and "cannot create the run folder" in result.output
    monkeypatch.undo()
    result = train(*TINY, "--data-dir", str(tmp_path / "a-file"), "--out", str(tmp_path / "run"))
    assert result.exit_code == 2 and not (tmp_path / "run").exists()  # refused data: no empty run folder


def edited(finished_run, tmp_path, edit) -> str:
    out = copy_of(finished_run, tmp_path)
    arrays = dict(np.load(out / "checkpoint.npz"))
    meta = json.loads(str(arrays["meta"]))
    edit(arrays, meta)
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(out / "checkpoint.npz", **arrays)
    return str(out)


@pytest.mark.parametrize("edit, message", [
    (lambda a, m: a.pop("model/conv1.weight"), "missing ['conv1.weight']"),
    (lambda a, m: a.update({"model/fc.bias": np.zeros(3)}), "fc.bias: shape (3,)"),
    (lambda a, m: a.update({"optimizer/momentum_buffer.1": np.zeros(3)}), "momentum_buffer.1 of shape (3,)"),
    (lambda a, m: m["config"].update(width=8), "is not the checkpoint of the run"),
    (lambda a, m: m["progress"].update(epoch="one"), "is not a run's progress"),
    (lambda a, m: m["config"].update(lr=None), "lr None is not a finite float"),
    (lambda a, m: m["config"].update(warmup_epochs=1e308), "warmup_epochs 1e+308 is out of range"),
    (lambda a, m: a.pop(next(k for k in sorted(a) if k.startswith("optimizer/momentum_buffer."))),
     "lacks optimizer/momentum_buffer."),  # never resumed with that momentum silently reset to zero
])
def test_a_damaged_or_edited_checkpoint_is_one_line(finished_run, data_dir, tmp_path, edit, message):
    out = edited(finished_run, tmp_path, edit)
    result = train("--resume", "--out", out, "--backend", BACKEND, "--data-dir", data_dir)
    [error] = error_lines(result.output)
    assert result.exit_code == 1 and message in error and "checkpoint.npz" in error


def test_a_checkpoint_missing_a_momentum_buffer_is_refused_by_name(finished_run, data_dir, tmp_path):
    names = [name for name in np.load(finished_run / "checkpoint.npz") if name.startswith("optimizer/")]
    assert names  # the run took steps with momentum: every trainable parameter has a buffer
    out = edited(finished_run, tmp_path, lambda a, m: a.pop(names[-1]))
    result = train("--resume", "--out", out, "--backend", BACKEND, "--data-dir", data_dir)
    [error] = error_lines(result.output)
    said = " ".join(result.output.split())
    assert result.exit_code == 1 and f"lacks {names[-1]} (the momentum of " in said
    assert "resuming would restart that momentum at zero" in said and "put back the run's checkpoint" in said


def test_random_bytes_in_a_checkpoint_say_corrupt_not_allow_pickle(finished_run, data_dir, tmp_path):
    out = copy_of(finished_run, tmp_path)
    (out / "checkpoint.npz").write_bytes(np.random.default_rng(0).bytes(4096))  # numpy reads it as a pickle
    for result in (train("--resume", "--out", str(out), "--backend", BACKEND, "--data-dir", data_dir),
                   CliRunner().invoke(main, ["eval", str(out / "checkpoint.npz"), "--data-dir", data_dir])):
        said = " ".join(result.output.split())
        assert result.exit_code == 1 and len(error_lines(result.output)) == 1, result.output
        assert "is not a readable minibn checkpoint: the file is corrupt" in said and "pickle" not in said


def test_edited_metadata_that_matches_the_folder_but_not_the_arrays(finished_run, data_dir, tmp_path):
    out = edited(finished_run, tmp_path, lambda a, m: m["config"].update(depth=14))
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    (tmp_path / "run" / "config.json").write_text(json.dumps({**config, "depth": 14}))
    result = train("--resume", "--out", out, "--backend", BACKEND, "--data-dir", data_dir)
    assert result.exit_code == 1 and "does not fit the ResNet-14" in result.output


# ---- bad values --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("option, value", [("--lr", "nan"), ("--lr", "inf"), ("--momentum", "nan"),
                                           ("--weight-decay", "inf"), ("--warmup-epochs", "inf")])
def test_non_finite_options_are_usage_errors(option, value, tmp_path):
    result = train(*TINY, "--epochs", "1", "--data", "sample", "--subset", "100", "--out", str(tmp_path / "r"),
                   option, value)
    assert result.exit_code == 2 and "is not a finite number" in result.output


def test_a_nan_loss_before_any_checkpoint_says_so(data_dir, tmp_path, monkeypatch):
    real_step = minibn.train.train_step

    def nan_step(*a, **k):
        loss, correct = real_step(*a, **k)
        return loss * float("nan"), correct
    monkeypatch.setattr(minibn.train, "train_step", nan_step)
    result = train(*TINY, "--data-dir", data_dir, "--out", str(tmp_path / "run"))
    assert result.exit_code == 1 and "no checkpoint was saved yet" in result.output
    assert "last good checkpoint" not in result.output and "--lr 0.01" in result.output


def test_resume_may_change_the_lr_and_records_it(data_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"
    interrupt_at(monkeypatch, step=5)  # epoch 1 done and saved
    assert train(*TINY, "--schedule", "constant", "--data-dir", data_dir, "--out", str(out)).exit_code == 130
    monkeypatch.undo()
    result = train("--resume", "--out", str(out), "--lr", "0.01", "--backend", BACKEND, "--data-dir", data_dir)
    assert result.exit_code == 0 and "learning rate 0.1 -> 0.01" in result.output
    config = json.loads((out / "config.json").read_text())
    assert config["lr"] == 0.01 and config["lr_changes"] == [{"epoch": 2, "step": 0, "from": 0.1, "to": 0.01}]
    assert [r["lr"] for r in records(out)] == [0.1, 0.01]
    result = train("--resume", "--out", str(out), "--epochs", "3", "--data-dir", data_dir)
    assert result.exit_code == 2 and "only --lr may change" in result.output


def test_resume_finds_the_runs_own_data_folder(data_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"
    interrupt_at(monkeypatch, step=5)
    assert train(*TINY, "--data-dir", data_dir, "--out", str(out)).exit_code == 130
    monkeypatch.undo()
    monkeypatch.setenv("HOME", str(tmp_path))  # no CIFAR-10 in ~/.cache/minibn nor $MINIBN_DATA
    monkeypatch.delenv("MINIBN_DATA", raising=False)
    result = train("--resume", "--out", str(out), "--backend", BACKEND)  # not on the bundled sample
    assert result.exit_code == 0 and "bundled sample" not in result.output
    assert json.loads((out / "config.json").read_text())["train_images"] == 200


@pytest.mark.parametrize("data", ["auto", "cifar10"])
def test_a_missing_or_looping_data_dir_is_refused_not_created(data, tmp_path):
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    result = train(*TINY, "--data", data, "--data-dir", str(tmp_path / "loop"), "--out", str(tmp_path / "r"))
    assert result.exit_code == 2 and "is not a folder" in result.output
    if data == "auto":
        result = train(*TINY, "--data-dir", str(tmp_path / "misspelled"), "--out", str(tmp_path / "r"))
        assert result.exit_code == 2 and "does not exist" in result.output
        assert not (tmp_path / "misspelled").exists()


def test_a_subset_larger_than_the_data_is_reported(data_dir, tmp_path):
    result = train(*TINY, "--epochs", "1", "--subset", "5000", "--data-dir", data_dir, "--out", str(tmp_path / "r"))
    assert result.exit_code == 0 and "--subset 5000 is more than the 200 training images" in result.output


def test_a_fifo_named_config_json_is_left_out_not_waited_on(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from minibn.run_files import read_config
    os.mkfifo(tmp_path / "config.json")  # a plain open() of a FIFO waits for a writer: sweep would hang on it
    with ThreadPoolExecutor(1) as pool:
        read = pool.submit(read_config, tmp_path)
        try:
            assert read.result(timeout=10) == {}
        finally:
            if not read.done():  # unblock the reader, so that the test fails instead of hanging
                os.close(os.open(tmp_path / "config.json", os.O_WRONLY | os.O_NONBLOCK))
