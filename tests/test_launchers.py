"""`minibn sweep --launcher local`: N runs at once give the numbers of one at a time, one process per run
folder, one sweep per folder; the scheduler's signals save checkpoints; the launchers' option errors."""
import csv
import fcntl
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner

import minibn.train
from minibn.cli import main
from minibn.launch.slurm import parse_sbatch, parse_time
from tests.conftest import BACKEND, STANDIN

GRID = ["--backend", BACKEND, "--depths", "8,14", "--modes", "bn,output", "--epochs", "2", "--width", "4",
        "--batch-size", "50", "--data", "sample", "--subset", "200", "--test-subset", "100"]
processes_once = pytest.mark.skipif(STANDIN, reason="worker processes do not depend on the backend: run on NumPy only")


def sweep(*args):
    return CliRunner().invoke(main, ["sweep", *args], catch_exceptions=False)


def results(folder):
    """results.csv without the seconds (the only column that may differ between two runs of one grid)."""
    rows = list(csv.DictReader(open(folder / "results.csv")))
    return sorted(({k: v for k, v in row.items() if k != "seconds"} for row in rows), key=lambda r: r["run"])


def same_weights(a, b):
    a, b = np.load(a / "checkpoint.npz"), np.load(b / "checkpoint.npz")
    return all(np.array_equal(a[k], b[k]) for k in a if k.startswith(("model/", "optimizer/")))


@processes_once
def test_two_jobs_give_the_numbers_of_one_at_a_time(tmp_path):
    parallel = sweep(*GRID, "--jobs", "2", "--out", str(tmp_path / "parallel"))
    assert parallel.exit_code == 0, parallel.output
    assert "2 at a time, 1 threads each" in " ".join(parallel.output.split())
    one_at_a_time = sweep(*GRID, "--threads", "1", "--out", str(tmp_path / "serial"))
    assert one_at_a_time.exit_code == 0, one_at_a_time.output
    assert len(results(tmp_path / "parallel")) == 4 and results(tmp_path / "parallel") == results(tmp_path / "serial")
    for run in ("resnet8-bn-seed0", "resnet14-output-seed0"):
        assert same_weights(tmp_path / "parallel" / run, tmp_path / "serial" / run)
    # each run went to exactly one worker process, which logged to its own file
    assert sorted(line.split()[1] for line in parallel.output.splitlines() if line.startswith("started ")) == \
        sorted(["resnet8-bn-seed0", "resnet8-output-seed0", "resnet14-bn-seed0", "resnet14-output-seed0"])
    assert len(list((tmp_path / "parallel" / "logs").glob("*.log"))) == 4


def test_a_second_sweep_on_the_same_folder_is_refused(tmp_path):
    out = tmp_path / "sweep"
    out.mkdir()
    held = os.open(out, os.O_RDONLY)
    try:  # as a sweep running in another process holds it: the folder locked, who holds it in .lock
        fcntl.flock(held, fcntl.LOCK_EX)
        (out / ".lock").write_text(json.dumps({"pid": 4242, "host": "node1", "since": "today",
                                               "command": "minibn sweep"}))
        result = sweep(*GRID, "--out", str(out))
    finally:
        os.close(held)
    assert result.exit_code == 1 and "is being written by pid 4242 on node1" in result.output
    assert not (out / "resnet8-bn-seed0").exists()


@processes_once
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])  # SIGINT: `kill -INT` to the launcher alone
def test_sigterm_to_the_launcher_stops_every_worker_with_a_checkpoint(tmp_path, signum):
    out = tmp_path / "sweep"
    grid = [*GRID[2:], "--backend", "numpy", "--epochs", "40", "--modes", "bn", "--jobs", "2", "--out", str(out)]
    launcher = subprocess.Popen([sys.executable, "-m", "minibn", "sweep", *grid], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    runs = [out / "resnet8-bn-seed0", out / "resnet14-bn-seed0"]
    deadline = time.time() + 120
    while not all((run / "metrics.jsonl").exists() and (run / "metrics.jsonl").read_text() for run in runs):
        assert time.time() < deadline and launcher.poll() is None, launcher.communicate()[0]
        time.sleep(0.05)
    launcher.send_signal(signum)
    output = launcher.communicate(timeout=60)[0]
    assert launcher.returncode == 1 and "every running run saved a checkpoint" in output, output
    for run in runs:
        assert (run / "checkpoint.npz").exists() and not (run / "summary.json").exists()
        assert "interrupted in epoch" in (out / "logs" / f"{run.name}.log").read_text()
    status = sweep(*grid, "--status")
    assert status.output.strip().endswith("2 unfinished")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGUSR1])
def test_a_signal_mid_step_stops_before_the_next_and_resumes_bit_identical(tmp_path, monkeypatch, signum):
    args = ["train", "--backend", BACKEND, "--depth", "8", "--width", "4", "--batch-size", "50", "--epochs", "2",
            "--train", "all", "--data", "sample", "--subset", "200", "--test-subset", "50"]
    straight = tmp_path / "straight"
    assert CliRunner().invoke(main, [*args, "--out", str(straight)]).exit_code == 0
    real_step, calls = minibn.train.train_step, []

    def step_then_signal(*step_args):
        result = real_step(*step_args)
        calls.append(1)
        if len(calls) == 6:  # epoch 2, its second step done, the weights updated, the step not yet counted
            os.kill(os.getpid(), signum)
        return result
    monkeypatch.setattr(minibn.train, "train_step", step_then_signal)
    out = tmp_path / "run"
    result = CliRunner().invoke(main, [*args, "--out", str(out)])
    assert result.exit_code == 130 and "interrupted in epoch 2 at step 2" in result.output, result.output
    assert signal.getsignal(signum) in (signal.SIG_DFL, signal.default_int_handler)  # put back after the run
    monkeypatch.undo()
    result = CliRunner().invoke(main, ["train", "--resume", "--out", str(out), "--backend", BACKEND])
    assert result.exit_code == 0, result.output
    assert same_weights(straight, out)


@pytest.mark.parametrize("args, message", [
    (["--jobs", "2", "--launcher", "slurm", "--time", "10"], "--jobs is an option of --launcher local"),
    (["--partition", "gpu"], "--partition is an option of --launcher slurm"),
    (["--time", "10"], "--time is an option of --launcher slurm"),
    (["--launcher", "slurm"], "needs --time"),
    (["--launcher", "slurm", "--time", "1:2:3:4"], "is not a Slurm time"),
    (["--launcher", "slurm", "--time", "10", "--sbatch", "=x"], "give KEY=VALUE"),
    (["--devices", "0,1", "--jobs", "3"], "one run per device at a time"),
    (["--devices", "0,x"], "not a comma-separated list of integers"),
    (["--devices", "0", "--backend", "numpy"], "--devices gives each run a GPU, but this sweep trains on numpy"),
    (["--devices", "0,0"], "names a GPU twice"),
])
def test_launcher_option_errors_are_one_line(args, message):
    result = sweep("--depths", "8", *args)
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output, result.output


def test_slurm_launcher_without_slurm_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch, squeue or srun
    result = sweep(*GRID, "--launcher", "slurm", "--time", "10", "--out", str(tmp_path / "sweep"))
    assert result.exit_code == 1 and "sbatch not found: run the Slurm launcher on a machine of the cluster" \
        in result.output
    monkeypatch.setitem(sys.modules, "submitit", None)  # as if minibn[slurm] were not installed
    result = sweep(*GRID, "--launcher", "slurm", "--time", "10", "--out", str(tmp_path / "sweep"))
    assert result.exit_code == 1 and 'pip install "minibn[slurm]"' in result.output


def test_status_of_a_grid_nothing_ran_yet(tmp_path):
    result = sweep(*GRID, "--out", str(tmp_path / "sweep"), "--status")
    assert result.exit_code == 0 and "4 not started" in result.output and not (tmp_path / "sweep").exists()


def test_slurm_times_and_sbatch_options():
    assert [parse_time(t) for t in ("90", "1:30", "02:00:00", "1-0", "1-02:30", "0:0:1")] == [90, 2, 120, 1440, 1590, 1]
    with pytest.raises(ValueError, match="must be positive"):
        parse_time("0")
    assert parse_sbatch(("account=lab", "--qos=long", "exclusive", "constraint=a100|h100")) == \
        {"account": "lab", "qos": "long", "exclusive": True, "constraint": "a100|h100"}


def test_a_sweep_resumes_a_run_at_the_lr_that_train_resume_lowered(tmp_path, monkeypatch):
    """The NaN-loss advice: `train --resume --lr` lowers a sweep run's lr; the next sweep keeps it."""
    grid = [*GRID[:2], "--depths", "8", "--modes", "bn", *GRID[6:], "--out", str(tmp_path)]
    real_step, calls = minibn.train.train_step, []

    def step_then_signal(*step_args):
        result = real_step(*step_args)
        calls.append(1)
        if len(calls) in (2, 4):  # the sweep's second step, then the second step of `train --resume`
            os.kill(os.getpid(), signal.SIGINT)
        return result
    monkeypatch.setattr(minibn.train, "train_step", step_then_signal)
    run = tmp_path / "resnet8-bn-seed0"
    assert CliRunner().invoke(main, ["sweep", *grid]).exit_code == 1
    result = CliRunner().invoke(main, ["train", "--resume", "--out", str(run), "--lr", "0.01", "--backend", BACKEND])
    assert result.exit_code == 130, result.output
    monkeypatch.undo()
    result = sweep(*grid)
    assert result.exit_code == 0, result.output
    config = json.loads((run / "config.json").read_text())
    assert config["lr"] == 0.01 and [change["to"] for change in config["lr_changes"]] == [0.01], config
