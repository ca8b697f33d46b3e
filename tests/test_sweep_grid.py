"""`minibn sweep` reports its own grid only, exits 1 when a run failed, loses no stop signal, leaves no orphan
worker, and maps --devices through an inherited CUDA_VISIBLE_DEVICES (tested with a fake GPU count)."""
import csv
import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

import minibn.cli.sweep
import minibn.launch.devices
import minibn.launch.local
import minibn.train
from minibn import backend
from minibn.cli import main
from minibn.launch.devices import DeviceError, inherited_devices, worker_devices
from tests.test_launchers import GRID, processes_once

ONE = [*GRID[:2], "--depths", "8", "--modes", "bn", *GRID[6:]]  # one run: ResNet-8, bn, seed 0


def sweep(*args):
    return CliRunner().invoke(main, ["sweep", *args], catch_exceptions=False)


def said(result):
    return " ".join(result.output.split())  # as one line, whatever the terminal's width


def test_a_foreign_run_folder_is_left_out_and_named(tmp_path):
    out = tmp_path / "sweep"
    foreign = CliRunner().invoke(main, ["train", *GRID[:2], "--depth", "8", "--width", "4", "--batch-size", "32",
                                        "--epochs", "1", "--data", "sample", "--subset", "64", "--test-subset", "32",
                                        "--out", str(out / "my-quick-try")])  # ResNet-8, bn, seed 0, too
    assert foreign.exit_code == 0, foreign.output
    (out / "stray").mkdir()
    with open(out / "stray" / "config.json", "wb") as sparse:  # 40 GB that take no disk: never read whole
        sparse.truncate(40 << 30)
    result = sweep(*ONE, "--out", str(out))
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert [row["run"] for row in rows] == ["resnet8-bn-seed0"] and rows[0]["epochs"] == "2"
    assert "| 8 | bn | 1 | 2 | 200 |" in (out / "results.md").read_text()  # one seed, not averaged with it
    assert "left out of the results: my-quick-try, not a run of this grid (depth 8, train bn, seed 0, epochs 1, " \
           "train_images 64)" in said(result)
    assert "left out of the results: stray, not a run of this grid (no readable config.json)" in said(result)


def test_a_run_that_stops_makes_the_sweep_exit_1(tmp_path, monkeypatch):
    real_train_one = minibn.launch.local.train_one

    def nan_in_bn(spec, *args):
        if spec.name == "resnet8-bn-seed0":
            raise minibn.train.TrainingStopped("the loss became nan in epoch 1 near step 2")
        return real_train_one(spec, *args)
    monkeypatch.setattr(minibn.launch.local, "train_one", nan_in_bn)
    out = tmp_path / "sweep"
    result = sweep(*[*ONE[:4], "--modes", "bn,output", *ONE[6:]], "--out", str(out))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "1 of 2 runs failed or stopped (resnet8-bn-seed0)" in said(result) and "run the same sweep again" \
        in said(result)
    assert [row["run"] for row in csv.DictReader(open(out / "results.csv"))] == ["resnet8-output-seed0"]


@processes_once
def test_a_worker_that_fails_makes_the_sweep_exit_1(tmp_path):
    out = tmp_path / "sweep"
    (out / "resnet8-bn-seed0").mkdir(parents=True)
    (out / "resnet8-bn-seed0" / "checkpoint.npz").write_bytes(b"not a checkpoint")  # its worker stops at once
    result = sweep(*[*ONE[:4], "--modes", "bn,output", *ONE[6:]], "--jobs", "2", "--out", str(out))
    assert result.exit_code == 1 and "1 of 2 runs failed or stopped (resnet8-bn-seed0)" in said(result)
    assert "resnet8-bn-seed0 stopped (exit 1)" in said(result) and "is not a readable minibn checkpoint" \
        in said(result)
    assert [row["run"] for row in csv.DictReader(open(out / "results.csv"))] == ["resnet8-output-seed0"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_a_runs_last_evaluation_stops_the_sweep(tmp_path, monkeypatch, signum):
    real_evaluate, calls = minibn.train.evaluate, []

    def evaluate_and_signal(*args):
        calls.append(1)
        if len(calls) == 2:  # the first run's last epoch: no step is left to see the signal
            os.kill(os.getpid(), signum)
        return real_evaluate(*args)
    monkeypatch.setattr(minibn.train, "evaluate", evaluate_and_signal)
    out = tmp_path / "sweep"
    result = sweep(*[*ONE[:4], "--modes", "bn,output", *ONE[6:]], "--out", str(out))
    assert result.exit_code == 1 and "stopped as asked (Ctrl-C or SIGTERM) before resnet8-output-seed0" \
        in said(result), result.output
    assert (out / "resnet8-bn-seed0" / "summary.json").exists() and not (out / "resnet8-output-seed0").exists()
    assert signal.getsignal(signum) in (signal.SIG_DFL, signal.default_int_handler)  # put back


def alive(pid: int) -> bool:
    """Running, not a zombie that no one has reaped yet (reparented processes in a container may stay so)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@processes_once
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_killing_the_launcher_stops_its_workers_with_a_checkpoint(tmp_path):
    out, log = tmp_path / "sweep", tmp_path / "launcher.out"
    grid = [*GRID[2:], "--backend", "numpy", "--epochs", "40", "--modes", "bn", "--jobs", "2", "--out", str(out)]
    with open(log, "w") as output:
        launcher = subprocess.Popen([sys.executable, "-m", "minibn", "sweep", *grid], stdout=output,
                                    stderr=subprocess.STDOUT)
    runs = [out / "resnet8-bn-seed0", out / "resnet14-bn-seed0"]
    deadline = time.time() + 120
    while not all((run / "checkpoint.npz").exists() for run in runs):
        assert time.time() < deadline and launcher.poll() is None, log.read_text()
        time.sleep(0.05)
    workers = [int(line.split("(pid ")[1].split(",")[0]) for line in log.read_text().splitlines()
               if line.startswith("started ")]
    assert len(workers) == 2 and all(alive(pid) for pid in workers)
    launcher.kill()  # SIGKILL: no handler runs
    launcher.wait()
    deadline = time.time() + 60
    while any(alive(pid) for pid in workers):
        assert time.time() < deadline, "a worker outlived its launcher"
        time.sleep(0.1)
    for run in runs:  # each saved where it was and said so
        assert "interrupted in epoch" in (out / "logs" / f"{run.name}.log").read_text()
    assert sweep(*grid, "--status").output.strip().endswith("2 unfinished")


# ---- --devices, without a GPU -----------------------------------------------------------------------
def test_devices_are_counted_among_the_visible_ones_and_mapped_through_them():
    assert inherited_devices({}) is None
    assert inherited_devices({"CUDA_VISIBLE_DEVICES": "2, 3"}) == ["2", "3"]
    assert worker_devices([0, 1], 4, None) == ["0", "1"]
    assert worker_devices([1, 0], 2, ["2", "3"]) == ["3", "2"]  # under Slurm, --devices 0 is the first visible
    assert worker_devices([0], 1, ["GPU-8f2e"]) == ["GPU-8f2e"]
    with pytest.raises(DeviceError, match=r"--devices 2: this machine lets minibn see 2 GPUs \(GPUs 0 to 1, the "
                                          r"GPUs of CUDA_VISIBLE_DEVICES=5,7\)"):
        worker_devices([0, 2], 2, ["5", "7"])
    with pytest.raises(DeviceError, match="no CUDA device is visible here"):
        worker_devices([0], 0, None)


@pytest.fixture
def two_visible_gpus(monkeypatch):
    """A machine with two GPUs visible, as a child process would count them; the launcher must not touch CUDA."""
    def no_cuda_here(*args, **kwargs):
        raise AssertionError("the launcher selected a backend (a CUDA context on a GPU machine)")
    monkeypatch.setattr(minibn.launch.devices, "visible_device_count", lambda: 2)
    monkeypatch.setattr(backend, "use_backend", no_cuda_here)
    started = {}

    def record(specs, jobs, devices, logs, console):
        started.update(jobs=jobs, devices=devices, backends={spec.backend for spec in specs})
        return []
    monkeypatch.setattr(minibn.launch.local, "run_in_processes", record)
    monkeypatch.setattr(minibn.cli.sweep, "report_results", lambda *args, **kwargs: None)
    return started


def test_devices_under_an_inherited_cuda_visible_devices(tmp_path, monkeypatch, two_visible_gpus):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")  # e.g. the GPUs Slurm gave this job
    monkeypatch.delenv("MINIBN_BACKEND", raising=False)
    result = sweep("--depths", "8", "--modes", "bn,output", "--data", "sample", "--devices", "1,0",
                   "--out", str(tmp_path / "sweep"))
    assert result.exit_code == 0, result.output
    assert two_visible_gpus == {"jobs": 2, "devices": ["6", "4"], "backends": {"cupy"}}


@pytest.mark.parametrize("visible, message", [
    ("4,6", "--devices 2: this machine lets minibn see 2 GPUs (GPUs 0 to 1, the GPUs of CUDA_VISIBLE_DEVICES=4,6)"),
    (None, "--devices 2: this machine lets minibn see 2 GPUs (GPUs 0 to 1)"),
])
def test_a_device_beyond_the_visible_ones_is_a_usage_error(tmp_path, monkeypatch, two_visible_gpus, visible,
                                                          message):
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    result = sweep("--depths", "8", "--data", "sample", "--devices", "0,2", "--out", str(tmp_path / "sweep"))
    assert result.exit_code == 2 and message in said(result) and "Traceback" not in result.output
    assert not two_visible_gpus and not (tmp_path / "sweep").exists()


def test_devices_without_any_usable_gpu_is_one_line(tmp_path, monkeypatch):
    """The real count, in a child process, which sees no GPU on any machine, with or without CuPy."""
    monkeypatch.delenv("MINIBN_BACKEND", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    result = sweep("--depths", "8", "--data", "sample", "--devices", "0", "--out", str(tmp_path / "sweep"))
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "--devices: CuPy and a CUDA device are needed, and none is usable here" in said(result) \
        or "no CUDA device is visible here" in said(result)


def test_jobs_on_cupy_without_a_gpu_is_one_line_before_any_worker_starts(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU on any machine
    monkeypatch.setattr(minibn.launch.local, "run_in_processes", None)  # calling it would fail
    result = sweep("--depths", "8", "--data", "sample", "--backend", "cupy", "--jobs", "2",
                   "--out", str(tmp_path / "sweep"))
    assert result.exit_code == 1 and "Error: --backend cupy: " in result.output and "Traceback" not in result.output
