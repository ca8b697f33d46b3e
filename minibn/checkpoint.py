"""A run's config and progress, and the checkpoint that holds them: written atomically, read with suspicion.

A checkpoint is data from disk, not code: its arrays must fit the model its metadata describes, its
metadata must be a config some run could have, and its config must be that of the folder it sits in.
Each failure is a ValueError that names the file.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from minibn.models import MODES, cifar_resnet, set_trainable
from minibn.nn import Module
from minibn.optim import SCHEDULES, SGD
from minibn.runs import RunFolderError, check_still_locked
from minibn.run_files import differences, read_config
from minibn.serialization import load, save


@dataclass
class TrainConfig:
    depth: int = 20
    width: int = 16
    train: str = "bn"  # which parameters train: all, bn, bn+output, output, random
    epochs: int = 160
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "multistep"
    warmup_epochs: float = 0.0
    seed: int = 0
    data: str = "cifar10"  # or "sample"
    subset: int | None = None
    test_subset: int | None = None
    eval_batch_size: int = 1000


def check_config(config: TrainConfig) -> None:
    """ValueError naming the first field that no run can have (a checkpoint's metadata is data, not code)."""
    kinds = {"int": (int,), "float": (int, float), "str": (str,), "int | None": (int, type(None))}
    for field in fields(TrainConfig):
        value = getattr(config, field.name)
        if isinstance(value, bool) or not isinstance(value, kinds[field.type]) \
                or (isinstance(value, float) and not math.isfinite(value)):
            raise ValueError(f"{field.name} {value!r} is not a finite {field.type}")
    wrong = {"depth": config.depth not in range(8, 10_001, 6), "width": config.width < 1,
             "train": config.train not in MODES, "epochs": config.epochs < 1, "batch_size": config.batch_size < 2,
             "lr": config.lr <= 0, "momentum": not 0 <= config.momentum < 1, "weight_decay": config.weight_decay < 0,
             "schedule": config.schedule not in SCHEDULES,
             "warmup_epochs": not 0 <= config.warmup_epochs <= config.epochs,
             "seed": config.seed < 0, "data": config.data not in ("auto", "cifar10", "sample"),
             "subset": (config.subset or 2) < 2, "test_subset": (config.test_subset or 1) < 1,
             "eval_batch_size": config.eval_batch_size < 1}
    for name, is_wrong in wrong.items():
        if is_wrong:
            raise ValueError(f"{name} {getattr(config, name)!r} is out of range")


@dataclass
class Progress:
    """Where a run is: epochs done, batches done in the current epoch, and its partial sums."""
    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    loss_sum: float = 0.0
    correct: float = 0.0
    seen: int = 0
    seconds: float = 0.0


# ---- checkpoints ------------------------------------------------------------------------------
def save_checkpoint(path: Path, model: Module, optimizer: SGD, config: TrainConfig, progress: Progress,
                    best_acc: float, lr_changes: list | None = None) -> None:
    """Model (with BN buffers and mask), optimizer state and progress in one .npz, written atomically.

    RunFolderError if it cannot be written (full disk, permissions): the old checkpoint stays whole.
    """
    meta = {"config": asdict(config), "progress": asdict(progress), "best_test_acc": best_acc,
            "lr_changes": lr_changes or [], "rng": {"kind": "numpy default_rng([seed, epoch])", "seed": config.seed}}
    arrays = {f"model/{k}": v for k, v in model.state_dict().items()}
    arrays.update({f"optimizer/{k}": v for k, v in optimizer.state_dict().items()})
    arrays["meta"] = np.array(json.dumps(meta))
    check_still_locked(path.parent)
    try:
        save(arrays, str(path))
    except OSError as error:
        raise RunFolderError(f"could not write {path} ({error.strerror})") from None


def read_checkpoint(path: Path) -> tuple[dict, dict, dict]:
    """(meta, model state, optimizer state); ValueError with the file name if it is unreadable."""
    try:
        arrays = load(str(path))
    except FileNotFoundError:
        raise ValueError(f"no checkpoint at {path}") from None
    except OSError as error:
        raise ValueError(f"cannot read {path} ({error.strerror})") from None
    except Exception:  # numpy's own words ("... when allow_pickle=False") would suggest the wrong remedy
        raise ValueError(f"{path} is not a readable minibn checkpoint: the file is corrupt, or not the .npz of "
                         f"arrays that minibn train writes; put back the run's checkpoint, or start the run "
                         f"again") from None
    try:
        meta = json.loads(str(arrays.pop("meta")))
        check_config(TrainConfig(**meta["config"]))
        progress = Progress(**meta["progress"])
        numbers = [*asdict(progress).values(), meta["best_test_acc"]]
        counts = [progress.epoch, progress.step_in_epoch, progress.global_step, progress.seen]
        if not all(type(v) in (int, float) and 0 <= v < math.inf for v in numbers) \
                or not all(type(v) is int for v in counts) or not isinstance(meta.get("lr_changes", []), list):
            raise ValueError(f"progress {meta['progress']} is not a run's progress")
    except Exception as error:
        raise ValueError(f"{path} is not a readable minibn checkpoint ({type(error).__name__}: {error})") from None
    model_state = {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}
    optim_state = {k[len("optimizer/"):]: v for k, v in arrays.items() if k.startswith("optimizer/")}
    return meta, model_state, optim_state


def check_model_size(path: Path, config: dict, model_state: dict, width_only: bool = False) -> None:
    """ValueError unless the metadata's depth and width are those of the arrays: a model is built from the
    metadata before the arrays are loaded into it, and an edited width of 100000 would allocate 671 GiB.
    ``width_only``: the width alone (resuming; restore names any other misfit, once the model is built)."""
    stem = model_state.get("conv1.weight")
    blocks = sum(1 for name in model_state if name.startswith("layer") and name.endswith(".conv1.weight"))
    if width_only and stem is None:  # restore names what is missing
        return
    if stem is None or stem.shape[:1] != (config["width"],) or (
            not width_only and blocks != 3 * ((config["depth"] - 2) // 6)):
        held = f"stem {stem.shape}, {blocks} blocks" if stem is not None else "no stem convolution"
        raise ValueError(f"{path} is not a readable minibn checkpoint: its metadata says depth {config['depth']}, "
                         f"width {config['width']}, but its arrays ({held}) do not fit the ResNet-{config['depth']} "
                         f"of width {config['width']} it describes; the file was edited or damaged: put back the "
                         f"run's checkpoint, or start the run again")


def read_run_checkpoint(out: Path) -> tuple[dict, dict, dict]:
    """read_checkpoint of ``out``/checkpoint.npz, refusing one whose config is not that of ``out``/config.json."""
    checkpoint = out / "checkpoint.npz"
    meta, model_state, optim_state = read_checkpoint(checkpoint)
    if other := differences(read_config(out), meta["config"], ignore=("lr",)):  # lr: a resume may change it
        raise ValueError(f"{checkpoint} is not the checkpoint of the run in {out}: it has "
                         f"{', '.join(f'{k} {mine}' for k, _, mine in other)} where config.json has "
                         f"{', '.join(f'{k} {theirs}' for k, theirs, _ in other)}; put back this run's "
                         f"checkpoint, or start a new run in another folder")
    return meta, model_state, optim_state


def model_from_checkpoint(path: Path) -> tuple[Module, dict]:
    meta, model_state, _ = read_checkpoint(path)
    check_model_size(path, meta["config"], model_state)
    config = TrainConfig(**meta["config"])
    model = cifar_resnet(config.depth, config.width, seed=config.seed)
    set_trainable(model, config.train, seed=config.seed)
    restore(path, config, model, model_state)
    return model, meta


def restore(path: Path, config: TrainConfig, model: Module, model_state: dict, optimizer: SGD | None = None,
            optim_state: dict | None = None, steps_done: int = 0) -> None:
    """Load a checkpoint's arrays into the model (and optimizer); ValueError naming the file if they do not fit.

    After ``steps_done`` > 0 steps with momentum, every trainable parameter has a momentum buffer: a checkpoint
    that lacks one is refused by name (loading it would restart that parameter's momentum at zero, silently).
    """
    try:
        model.load_state_dict(model_state)
        if optimizer is not None:
            optimizer.load_state_dict(optim_state)
    except (KeyError, ValueError) as error:
        raise ValueError(f"{path} does not fit the ResNet-{config.depth} (width {config.width}, training "
                         f"{config.train}) its metadata describes: {error.args[0]}; the file is damaged or "
                         f"was edited") from None
    if optimizer is not None and steps_done > 0 and config.momentum > 0:
        names = {f"momentum_buffer.{i}": name for i, (name, p) in enumerate(model.named_parameters())
                 if p.requires_grad}
        if missing := [key for key in names if key not in optim_state]:
            raise ValueError(f"{path} lacks optimizer/{missing[0]} (the momentum of {names[missing[0]]})"
                             + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
                             + f" after {steps_done} steps: resuming would restart that momentum at zero; the "
                             f"file is damaged or was edited: put back the run's checkpoint, or start the run again")
