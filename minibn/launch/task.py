"""Training one run of a sweep, wherever it runs: in the sweep's process, in a local worker process
(`python -m minibn.launch.task SPEC_JSON`) or in a Slurm array task (`slurm_task`).

A run resumes from its checkpoint when its folder has one, so a worker that was stopped (Ctrl-C,
SIGTERM, SIGUSR1: a checkpoint is saved) or killed (the last epoch's checkpoint survives) goes on
where it stopped when the run is given to a worker again.
"""
from __future__ import annotations

import json
import os
import signal
import stat
import sys
import threading
from dataclasses import asdict, replace
from pathlib import Path

from minibn.launch.runs import RunSpec
from minibn.run_files import read_config


def load_dataset(spec: RunSpec):
    from minibn.data import load_cifar10_folder, load_sample
    return load_sample() if spec.data_folder is None else load_cifar10_folder(Path(spec.data_folder))


def train_one(spec: RunSpec, dataset=None, console=None, stop=None) -> dict:
    """Train or resume the run; its summary. ``dataset``: already loaded, else loaded here. ``stop``: the
    sweep's StopSignals (minibn.train.run)."""
    from minibn import backend
    from minibn.fast import set_num_threads
    from minibn.train import TrainConfig, run
    if spec.threads is not None:
        set_num_threads(spec.threads)  # the fast CPU path's sums depend on it: part of what fixes the numbers
    backend.use_backend(spec.backend)
    folder = Path(spec.folder)
    config, resume = TrainConfig(**spec.config), (folder / "checkpoint.npz").exists()
    if resume and read_config(folder).get("lr_changes"):  # `train --resume --lr` lowered it (a NaN loss, say):
        config = replace(config, lr=float(read_config(folder)["lr"]))  # keep that lr (a sweep has no --lr)
    return run(config, load_dataset(spec) if dataset is None else dataset, folder, resume=resume, console=console,
               tensorboard=spec.tensorboard, stop=stop)


def limit_blas(spec: RunSpec) -> None:
    """In a worker process: BLAS outside the fast CPU path gets no more threads than the worker's share."""
    if spec.threads is not None:
        from threadpoolctl import threadpool_limits
        threadpool_limits(spec.threads)


def slurm_task(spec: RunSpec) -> dict:
    """What a Slurm array task runs (through submitit, which keeps an exception as the task's result)."""
    limit_blas(spec)
    return train_one(spec)


def command(spec: RunSpec) -> list[str]:
    """The command line of a local worker process for ``spec``."""
    return [sys.executable, "-m", "minibn.launch.task", json.dumps(asdict(spec))]


def end_with_the_launcher() -> None:
    """Stop this worker (as on SIGTERM: save a checkpoint and exit) when its launcher ends, however it ends.

    The launcher gives each worker a pipe as its standard input and never writes to it: the kernel closes the
    launcher's end when the launcher exits, even on SIGKILL, which no handler sees, and the read below returns.
    We chose this over Linux's prctl(PR_SET_PDEATHSIG): that is Linux only, needs ctypes and a preexec_fn
    (unsafe in a process with threads), and fires when the launcher's forking *thread* ends, not its process.
    A worker started by hand, whose standard input is no pipe, watches nothing.
    """
    try:
        if not stat.S_ISFIFO(os.fstat(0).st_mode):
            return
    except OSError:  # no standard input at all
        return

    def watch():
        while os.read(0, 4096):  # the launcher writes nothing; b"" is the end of the pipe
            pass
        os.kill(os.getpid(), signal.SIGTERM)
    threading.Thread(target=watch, name="end-with-the-launcher", daemon=True).start()


def main(argv: list[str]) -> int:
    """A local worker: exit 0 finished, 130 stopped with a checkpoint saved, 1 failed (the reason printed last)."""
    from minibn.backend import BackendError
    from minibn.data import DataError
    from minibn.runs import RunFolderError
    from minibn.train import Interrupted, TrainingStopped
    spec = RunSpec(**json.loads(argv[1]))
    end_with_the_launcher()
    limit_blas(spec)
    try:
        train_one(spec)
    except Interrupted as stop:
        print(stop, flush=True)
        return 130
    except (TrainingStopped, ValueError, DataError, BackendError, RunFolderError) as error:
        print(f"{spec.name} stopped: {error}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
