"""The runs of a sweep: one RunSpec per depth x mode x seed, each with its own run folder.

A run folder is written by one process only: a launcher hands each run to one worker, never two,
and one sweep at a time may work on a sweep folder (minibn.runs.run_folder_lock on it).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class RunSpec:
    """Everything a worker needs to train (or resume) one run; plain data, so that it pickles and fits in JSON."""
    name: str  # resnet14-bn-seed0
    folder: str  # the run folder, absolute
    config: dict  # minibn.train.TrainConfig's fields
    backend: str  # numpy, cupy or auto
    data_folder: str | None  # the cifar-10-batches-py folder, absolute; None: the bundled sample
    threads: int | None = None  # threads of the fast CPU path; None: the cores the worker may use
    tensorboard: bool = False


def run_name(depth: int, mode: str, seed: int) -> str:
    return f"resnet{depth}-{mode.replace('+', '-')}-seed{seed}"


def plan(root: Path, depths, modes, seeds, config: dict, backend: str, data_folder: Path | None,
         threads: int | None, tensorboard: bool) -> list[RunSpec]:
    """The grid, depth by depth (so a cut-short sweep has whole depths): ``config`` holds the shared fields."""
    root, data_folder = Path(root).resolve(), None if data_folder is None else str(data_folder)
    return [RunSpec(run_name(depth, mode, seed), str(root / run_name(depth, mode, seed)),
                    {**config, "depth": depth, "train": mode, "seed": seed}, backend, data_folder, threads, tensorboard)
            for depth in depths for mode in modes for seed in seeds]


def finished(spec: RunSpec) -> bool:
    return (Path(spec.folder) / "summary.json").exists()


def epochs_done(spec: RunSpec) -> int:
    """Epochs logged in metrics.jsonl (those the checkpoint holds, once a resumed run has tidied the log); a torn
    last line is no epoch, and a log that cannot be read counts 0 (resuming the run says what is wrong with it)."""
    from minibn.runs import read_records
    metrics = Path(spec.folder) / "metrics.jsonl"
    try:
        return len(read_records(metrics)[0]) if metrics.exists() else 0
    except ValueError:
        return 0


def local_state(spec: RunSpec) -> str:
    """What the run folder alone says: finished, unfinished (it resumes from its checkpoint) or not started."""
    if finished(spec):
        return "finished"
    return "unfinished" if (Path(spec.folder) / "checkpoint.npz").exists() else "not started"
