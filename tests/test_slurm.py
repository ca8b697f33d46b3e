"""`minibn sweep --launcher slurm` on a real, private Slurm cluster (tests/slurm_cluster.py).

A 2 depths x 2 modes grid goes through one job array; one task is stopped mid-run (scancel: SIGTERM,
on which the run saves a checkpoint); the status says so; the same command again resubmits that run
alone, which resumes; and the results equal those of the local launcher with the same seeds.
"""
import json
import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from minibn.cli import main
from minibn.cli.common import console
from minibn.checkpoint import read_checkpoint
from tests.conftest import STANDIN
from tests.slurm_cluster import PrivateSlurm, missing
from tests.test_launchers import results, same_weights

GRID = ["--backend", "numpy", "--depths", "8,14", "--modes", "bn,output", "--epochs", "3", "--width", "4",
        "--batch-size", "50", "--data", "sample", "--subset", "300", "--test-subset", "100"]
SLURM = ["--launcher", "slurm", "--time", "10", "--cpus-per-task", "1", "--sbatch", "nice=0"]
STOPPED = "resnet14-bn-seed0"  # the run stopped mid-way


@pytest.fixture(scope="module")
def cluster():
    if STANDIN:
        pytest.skip("the launcher does not depend on the backend: run on NumPy only")
    pytest.importorskip("submitit", reason='the Slurm launcher needs submitit: pip install "minibn[slurm]"')
    why = missing()
    if why:
        pytest.skip(why)
    slurm = PrivateSlurm().start()
    yield slurm
    slurm.stop()


@pytest.fixture
def on_cluster(cluster, monkeypatch):
    monkeypatch.setenv("SLURM_CONF", cluster.env["SLURM_CONF"])
    root = str(Path(__file__).resolve().parent.parent)  # the array tasks import this checkout's minibn
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
    monkeypatch.setattr("minibn.cli.sweep.WAIT_SECONDS", 0.5)
    monkeypatch.setattr(console, "width", 250)  # whole table rows, whatever $COLUMNS says
    return cluster


def sweep(*args, exit_code=0):
    result = CliRunner().invoke(main, ["sweep", *GRID, *args], catch_exceptions=False)
    assert result.exit_code == exit_code, result.output
    return result.output


def wait(condition, what, timeout=120):
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_array_stopped_task_resubmitted_and_resumed_equals_local(on_cluster, tmp_path):
    out = tmp_path / "slurm"
    output = sweep(*SLURM, "--out", str(out))
    assert "submitted 4 of 4 runs as Slurm job" in output
    jobs = json.loads((out / "slurm" / "jobs.json").read_text())
    assert sorted(jobs) == ["resnet14-bn-seed0", "resnet14-output-seed0", "resnet8-bn-seed0", "resnet8-output-seed0"]
    assert len({job.split("_")[0] for job in jobs.values()}) == 1  # one array
    local = CliRunner().invoke(main, ["sweep", *GRID, "--out", str(out)])  # must not train what Slurm trains
    assert "to their Slurm jobs" in local.output and "; 0 to train" in " ".join(local.output.split()), local.output

    metrics = out / STOPPED / "metrics.jsonl"  # stop it once its first epoch is logged, two to go
    wait(lambda: metrics.exists() and metrics.read_text().strip(), "the first epoch of " + STOPPED)
    time.sleep(0.2)  # into the second epoch, most likely
    on_cluster.run("scancel", jobs[STOPPED])
    wait(lambda: jobs[STOPPED] not in on_cluster.run("squeue", "-h", "-r", "-o", "%i").stdout.split(),
         f"{STOPPED} to leave the queue")

    status = sweep(*SLURM, "--out", str(out), "--status")
    row = next(line for line in status.splitlines() if STOPPED in line)
    assert "failed" in row and "interrupted in epoch" in row and "resumes it from its checkpoint" in row, status
    assert json.loads((out / "slurm" / "jobs.json").read_text()) == jobs  # --status submits nothing

    output = sweep(*SLURM, "--out", str(out), "--wait")
    assert "submitted 1 of 4 runs" in output and "4 finished" in output, output
    resubmitted = json.loads((out / "slurm" / "jobs.json").read_text())
    assert [run for run in jobs if resubmitted[run] != jobs[run]] == [STOPPED]
    log = "".join(p.read_text() for p in (out / "slurm").glob(f"{resubmitted[STOPPED]}*_log.out"))
    assert "resuming" in log, log  # from its checkpoint

    local = tmp_path / "local"
    sweep("--threads", "1", "--out", str(local))  # one thread per run, as --cpus-per-task 1 gives each task
    assert len(results(out)) == 4 and results(out) == results(local)
    assert same_weights(out / STOPPED, local / STOPPED)
    assert (out / "results.md").exists() and (out / "accuracy_vs_depth.png").exists()


def test_the_time_limit_warning_saves_a_checkpoint(on_cluster, tmp_path):
    out = tmp_path / "slurm"
    # SIGUSR1 170 s before a 3-minute limit: about 10 s in (Slurm checks time limits every 30 s or so)
    output = sweep("--depths", "8", "--modes", "bn", "--epochs", "2000", "--launcher", "slurm", "--time", "3",
                   "--sbatch", "signal=USR1@170", "--out", str(out), "--wait", exit_code=1)  # a run stopped: 1
    assert "1 failed" in output and "interrupted in epoch" in output, output
    assert "1 of 1 runs failed (see the note column)" in " ".join(output.split())
    assert '#SBATCH --signal=USR1@170' in "".join(p.read_text() for p in (out / "slurm").glob("*_submission.sh"))
    meta, _, _ = read_checkpoint(out / "resnet8-bn-seed0" / "checkpoint.npz")
    assert 0 < meta["progress"]["epoch"] < 2000
