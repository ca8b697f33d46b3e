"""Resuming a run: its checkpoint is read back only into the run it was saved by (same options, same data),
and its log is cut back to the epochs the checkpoint holds."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from minibn.checkpoint import Progress, TrainConfig, read_run_checkpoint, restore
from minibn.nn import Module
from minibn.optim import SGD
from minibn.run_files import differences, read_config, read_records, write_records


def notice(console, text: str) -> None:
    """One line, however long (paths are), and taken literally (a path may hold [brackets])."""
    console.print(text, soft_wrap=True, markup=False, highlight=False)


def resume_from(checkpoint: Path, config: TrainConfig, model: Module, optimizer: SGD, data_used: dict,
            steps_per_epoch: int, console) -> tuple[Progress, float, list]:
    """Load the checkpoint of the run in ``checkpoint.parent``, refusing one that is not this run's."""
    out = checkpoint.parent
    meta, model_state, optim_state = read_run_checkpoint(out)
    saved, folder = TrainConfig(**meta["config"]), read_config(out)
    if other := differences(asdict(saved), asdict(config), ignore=("lr", "eval_batch_size")):
        raise ValueError(f"{out} holds a run with {', '.join(f'{k} {theirs}' for k, theirs, _ in other)}, "
                         f"not {', '.join(f'{k} {mine}' for k, _, mine in other)}; resume it with its own "
                         f"options, or choose another folder")
    if folder and not same_data(folder, data_used):
        raise ValueError(f"{out} was trained on {folder.get('train_images')} training and "
                         f"{folder.get('test_images')} test images of {folder.get('data_source')}, but this data "
                         f"gives {data_used['train_images']} and {data_used['test_images']} of "
                         f"{data_used['data_source']}; pass the run's own data (--data, --data-dir)")
    progress = Progress(**meta["progress"])
    if progress.epoch > saved.epochs or progress.step_in_epoch > steps_per_epoch:
        raise ValueError(f"{checkpoint}: its progress (epoch {progress.epoch}, step {progress.step_in_epoch}) "
                         f"does not fit {saved.epochs} epochs of {steps_per_epoch} steps; the file was edited")
    restore(checkpoint, saved, model, model_state, optimizer, optim_state, steps_done=progress.global_step)
    lr_changes = list(meta.get("lr_changes", []))
    if config.lr != saved.lr:
        if progress.epoch >= saved.epochs:
            raise ValueError(f"{out} has finished its {saved.epochs} epochs: a new learning rate would change nothing")
        lr_changes.append({"epoch": progress.epoch + 1, "step": progress.step_in_epoch, "from": saved.lr,
                           "to": config.lr})
        notice(console, f"learning rate {saved.lr:g} -> {config.lr:g} from here on (recorded in config.json)")
    repair_log(out / "metrics.jsonl", progress.epoch, console)
    console.print(f"resuming {out} at epoch {progress.epoch + 1}, step {progress.step_in_epoch}")
    return progress, meta["best_test_acc"], lr_changes


def same_data(saved: dict, used: dict) -> bool:
    """Same image counts, and the bundled sample in both or in neither (a data folder may have moved)."""
    def is_sample(info):
        return str(info.get("data_source", "")).startswith("bundled sample")
    return all(saved.get(k, used[k]) == used[k] for k in ("train_images", "test_images")) \
        and is_sample(saved) == is_sample(used)


def repair_log(metrics: Path, epoch: int, console) -> None:
    """Keep only the log lines of epochs the checkpoint has (a run killed in between logged one more),
    and drop a torn last line, saying so."""
    records, torn = read_records(metrics) if metrics.exists() else ([], False)
    kept = [r for r in records if r["epoch"] <= epoch]
    if torn:
        notice(console, f"{metrics}: removed a torn last line (a write that was cut short)")
    if torn or kept != records or not metrics.exists():
        write_records(metrics, kept)
