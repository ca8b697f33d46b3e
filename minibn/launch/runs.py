"""The runs of a sweep: one RunSpec per depth x mode x seed, each with its own run folder.

A run folder is written by one process only: a launcher hands each run to one worker, never two,
and one sweep at a time may work on a sweep folder (minibn.runs.run_folder_lock on it).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
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
    from minibn.run_files import read_records
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


def other_settings(spec: RunSpec) -> list[tuple[str, object, object]]:
    """(setting, the run's value, the grid's value) for each setting in which the run in ``spec.folder`` differs
    from the grid's; [] for a run of the grid's settings, or a folder without a config."""
    from minibn.run_files import differences, read_config
    from minibn.train import TrainConfig
    saved = read_config(Path(spec.folder))
    first_change = (saved.get("lr_changes") or [{}])[0]  # after `train --resume --lr`: compare the first lr
    if isinstance(first_change, dict) and "from" in first_change:
        saved["lr"] = first_change["from"]
    return differences(saved, asdict(TrainConfig(**spec.config)), ignore=("data", "eval_batch_size"))


RUN_FILES = ("config.json", "metrics.jsonl", "checkpoint.npz", "summary.json")


def grid_results(specs: list[RunSpec], root: Path) -> tuple[list[dict], list[tuple[str, str]]]:
    """(the results rows of the grid's finished runs, (folder, why) for every other run folder under ``root``).

    A sweep reports its own runs only: a run someone trained into the sweep folder (another depth, 2 epochs on
    64 images, ...) would otherwise be averaged in as one more seed. Such folders are left out, and said so.
    """
    from minibn.analysis import result_row
    from minibn.run_files import read_config
    grid = {spec.name: spec for spec in specs}
    rows, left_out = [], []
    for folder in sorted(Path(root).iterdir(), key=lambda p: p.name):
        try:
            if not folder.is_dir() or not any((folder / name).exists() for name in RUN_FILES):
                continue  # logs/, slurm/, results.md...
        except OSError as error:  # a folder we may not look into
            left_out.append((folder.name, f"cannot be read ({error.strerror})"))
            continue
        spec = grid.get(folder.name)
        if spec is None:
            config = read_config(folder)
            what = ", ".join(f"{key} {config[key]}" for key in ("depth", "train", "seed", "epochs", "train_images")
                             if key in config)
            left_out.append((folder.name, f"not a run of this grid ({what or 'no readable config.json'})"))
        elif not finished(spec):
            continue  # the table shows finished runs; --status shows the others
        elif other := other_settings(spec):
            left_out.append((folder.name, "trained with " + ", ".join(f"{k} {theirs}" for k, theirs, _ in other)
                             + ", not the grid's " + ", ".join(f"{k} {mine}" for k, _, mine in other)))
        else:
            try:
                rows.append(result_row(folder))
            except ValueError as error:
                left_out.append((folder.name, str(error)))
    return rows, left_out
