"""Training a CIFAR ResNet: the loop, evaluation, logs and checkpoints that survive interruptions.

A run lives in one folder: config.json (what was asked), metrics.jsonl (one line
per epoch), checkpoint.npz (everything needed to continue, written after every
epoch and on Ctrl-C; minibn.checkpoint) and summary.json at the end. Every file is
written atomically, and one process at a time writes a folder (minibn.runs).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from minibn import backend, registry
from minibn import functional as F
from minibn.analysis import fraction_below, gamma_by_stage
from minibn.checkpoint import Progress, TrainConfig, check_config, save_checkpoint
from minibn.data import Cifar10, CifarLoader
from minibn.files import remove_stale_temporaries
from minibn.models import cifar_resnet, set_trainable
from minibn.nn import Module
from minibn.optim import SGD, learning_rate
from minibn.resume import notice, resume_from
from minibn.runs import RunFolderError, run_folder_lock
from minibn.run_files import append_record, read_records, write_json, write_records
from minibn.stop_signals import StopSignals
from minibn.tensor import no_grad

LOG_EVERY = 20  # steps between the progress updates (the only times the loop waits for the GPU)


class TrainingStopped(Exception):
    """The run stopped early (NaN loss); the message says why and which checkpoint is kept."""


class Interrupted(Exception):
    """Ctrl-C, SIGTERM or SIGUSR1 (see StopSignals): a checkpoint was saved and the run can be resumed."""


# ---- the loop --------------------------------------------------------------------------------------
def evaluate(model: Module, loader: CifarLoader) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over the loader, in eval mode (running BN statistics)."""
    model.eval()
    xp = backend.xp()
    loss_sum, correct = xp.zeros((), dtype=np.float64), xp.zeros((), dtype=np.int64)
    with no_grad(), registry.one_off_shapes():  # the GPU's scratch for the evaluation batch is given back after
        for images, labels in loader.epoch():
            logits = model(images)
            loss_sum += F.cross_entropy(logits, labels).data * len(labels)
            correct += (logits.data.argmax(axis=1) == labels).sum()
    model.train()
    loss_total, correct_total = read_sums(loss_sum, correct)
    return loss_total / loader.num_images, correct_total / loader.num_images


def read_sums(*device_scalars) -> list[float]:
    """Device scalars as Python floats, in one copy to the host: one wait for the GPU, not one each."""
    xp = backend.xp()
    return backend.to_host(xp.stack([xp.asarray(s, dtype=np.float64) for s in device_scalars])).tolist()


def gamma_fractions(model: Module) -> dict[str, float]:
    """Fraction of all BatchNorm gammas with |gamma| below 0.01, 0.05 and 0.1 (the paper's 'switched off')."""
    gammas = np.concatenate(list(gamma_by_stage(model).values()))
    return {f"{t:g}": fraction for t, fraction in fraction_below(gammas).items()}


def training_optimizer(model: Module, lr: float, momentum: float, weight_decay: float) -> SGD:
    """The optimizer of ``minibn train`` (and bench): the fast package's where it has one (PackedSGD on CuPy,
    minibn/fast/sgd.py), else optim.SGD."""
    settings = dict(lr=lr, momentum=momentum, weight_decay=weight_decay)
    return registry.run_fast("training_optimizer", model, **settings) or SGD(model.parameters(), **settings)


def train_step(model: Module, optimizer: SGD, images, labels, lr: float):
    """One SGD step; returns the loss and the number correct as device scalars (no sync)."""
    optimizer.lr = lr
    optimizer.zero_grad()
    logits = model(images)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    optimizer.step()
    return loss.data, (logits.data.argmax(axis=1) == labels).sum()


def run(config: TrainConfig, data: Cifar10, out: Path, resume: bool = False, console=None,
        tensorboard: bool = False, stop: StopSignals | None = None) -> dict:
    """Train (or continue training) as ``config`` says, writing the run folder ``out``. Returns the summary.

    ``out`` is locked for the whole run (RunFolderError if another process writes it). To resume, ``config``
    must be the checkpoint's, except ``lr``: a new learning rate applies from here on and is recorded.
    ``tensorboard``: also write TensorBoard event files into ``out`` (minibn.tensorboard_log).
    ``stop``: the caller's StopSignals (a sweep's, for all its runs: a signal that lands after the last
    step, as the run evaluates or saves, still stops the sweep), else the run installs its own.
    """
    from rich.console import Console
    console = console or Console(highlight=False)
    check_config(config)
    with run_folder_lock(out):
        return _run(config, data, out, resume, console, tensorboard, stop)


def _run(config: TrainConfig, data: Cifar10, out: Path, resume: bool, console, tensorboard: bool,
         given_stop: StopSignals | None) -> dict:
    checkpoint = out / "checkpoint.npz"
    for name in remove_stale_temporaries(out):
        notice(console, f"removed {out / name}, left by a save that was cut short")
    train_loader, test_loader, data_used = _loaders(_subset(data, config, console), config)

    model = cifar_resnet(config.depth, config.width, seed=config.seed)
    trainable = set_trainable(model, config.train, seed=config.seed)
    optimizer = training_optimizer(model, config.lr, config.momentum, config.weight_decay)
    progress, best_acc, lr_changes, last_saved = Progress(), 0.0, [], None
    if resume:
        progress, best_acc, lr_changes = resume_from(checkpoint, config, model, optimizer, data_used, len(train_loader),
                                                 console)
        last_saved = replace(progress)  # a copy: the loop updates progress in place
    else:
        write_records(out / "metrics.jsonl", [])
        (out / "summary.json").unlink(missing_ok=True)  # from a run that this one replaces
    write_json(out / "config.json", {**asdict(config), "lr_changes": lr_changes, "trainable_parameters": trainable,
                                     "backend": backend.backend_name(), **data_used})
    steps_per_epoch = len(train_loader)
    total_steps = config.epochs * steps_per_epoch
    warmup_steps = round(config.warmup_epochs * steps_per_epoch)
    board = None
    if tensorboard:
        from minibn.tensorboard_log import EpochBoard
        board = EpochBoard(out, first_epoch=progress.epoch + 1)
    stop = given_stop or StopSignals()
    try:
        while progress.epoch < config.epochs:
            _train_epoch(model, optimizer, train_loader, config, progress, total_steps, warmup_steps, console, stop)
            test_loss, test_acc = evaluate(model, test_loader)
            best_acc = max(best_acc, test_acc)
            record = _epoch_record(model, config, progress, total_steps, warmup_steps, test_loss, test_acc)
            append_record(out / "metrics.jsonl", record)
            if board is not None:
                board.write(record, model)
            _print_epoch(console, record, config.epochs, progress.seconds)
            progress = Progress(epoch=progress.epoch + 1, global_step=progress.global_step)
            save_checkpoint(checkpoint, model, optimizer, config, progress, best_acc, lr_changes)
            last_saved = replace(progress)
        return _summary(out, model, config, trainable)
    except KeyboardInterrupt:  # in training, evaluation or saving: progress says exactly where we are
        try:
            save_checkpoint(checkpoint, model, optimizer, config, progress, best_acc, lr_changes)
        except RunFolderError as error:
            raise RunFolderError(f"interrupted, and {error}; {_kept(last_saved, out)}") from None
        raise Interrupted(f"interrupted in epoch {progress.epoch + 1} at step {progress.step_in_epoch}; "
                          f"checkpoint saved to {checkpoint}; continue with --resume") from None
    except RunFolderError as error:
        raise RunFolderError(f"{error}; {_kept(last_saved, out)}") from None
    except TrainingStopped as error:
        raise TrainingStopped(f"{error}; {_kept(last_saved, out, _smaller_lr_advice(config, last_saved, out))}") \
            from None
    finally:
        if given_stop is None:
            stop.restore()
        if board is not None:
            board.close()


def _epoch_record(model, config: TrainConfig, progress: Progress, total_steps: int, warmup_steps: int,
                  test_loss: float, test_acc: float) -> dict:
    """The epoch's line of metrics.jsonl."""
    return {"epoch": progress.epoch + 1,
            "lr": learning_rate(progress.global_step - 1, total_steps, config.lr, config.schedule,
                                warmup_steps=warmup_steps),
            "train_loss": progress.loss_sum / progress.seen, "train_acc": progress.correct / progress.seen,
            "test_loss": test_loss, "test_acc": test_acc, "seconds": progress.seconds,
            "images_per_s": progress.seen / max(progress.seconds, 1e-9),
            "gamma_below": gamma_fractions(model)}  # how many channels BatchNorm switched off so far


def _print_epoch(console, record: dict, epochs: int, seconds: float) -> None:
    console.print(f"epoch {record['epoch']:>3}/{epochs}  lr {record['lr']:.4g}  "
                  f"train loss {record['train_loss']:.4f} acc {record['train_acc']:.2%}  "
                  f"test loss {record['test_loss']:.4f} acc {record['test_acc']:.2%}  {seconds:.1f}s "
                  f"({record['images_per_s']:.0f} img/s)", soft_wrap=True)  # one line, even in a log


def _train_epoch(model, optimizer, loader, config, progress: Progress, total_steps, warmup_steps, console,
                 stop: StopSignals) -> None:
    """Run the rest of the current epoch, updating ``progress`` (also when Ctrl-C stops it)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeRemainingColumn
    xp = backend.xp()
    loss_sum, correct = xp.zeros((), dtype=np.float64), xp.zeros((), dtype=np.int64)
    seen = 0  # images of this epoch since this process started it (or resumed it)
    start = time.perf_counter()
    bar = Bar(TextColumn(f"epoch {progress.epoch + 1}/{config.epochs}"), BarColumn(), MofNCompleteColumn(),
              TextColumn("{task.fields[status]}"), TimeRemainingColumn(), console=console, transient=True,
              disable=not console.is_terminal)  # in a log or a pipe it would only leave blank lines

    def sync_progress():
        """Fold the device sums into ``progress`` and check that the loss is finite.

        Reading the sums copies them to the host, so it waits for the GPU: this is the loop's only sync.
        """
        nonlocal loss_sum, correct, seen, start
        loss_total, correct_total = read_sums(loss_sum, correct)
        if not math.isfinite(loss_total):
            raise TrainingStopped(f"the loss became {loss_total} in epoch {progress.epoch + 1} "
                                  f"near step {progress.step_in_epoch}")
        progress.loss_sum += loss_total
        progress.correct += correct_total
        progress.seen += seen
        progress.seconds += time.perf_counter() - start
        loss_sum, correct, seen, start = loss_sum * 0, correct * 0, 0, time.perf_counter()

    with bar:
        task = bar.add_task("train", total=len(loader), completed=progress.step_in_epoch, status="")
        try:
            for images, labels in loader.epoch(progress.epoch, progress.step_in_epoch):
                stop.check()  # between steps: progress counts exactly the steps in the weights
                lr = learning_rate(progress.global_step, total_steps, config.lr, config.schedule,
                                   warmup_steps=warmup_steps)
                loss, batch_correct = train_step(model, optimizer, images, labels, lr)
                loss_sum += loss * len(labels)
                correct += batch_correct
                seen += len(labels)
                progress.step_in_epoch += 1
                progress.global_step += 1
                if progress.step_in_epoch % LOG_EVERY == 0 or progress.step_in_epoch == len(loader):
                    sync_progress()
                    bar.update(task, completed=progress.step_in_epoch,
                               status=f"loss {progress.loss_sum / progress.seen:.3f}  "
                                      f"acc {progress.correct / progress.seen:.1%}  "
                                      f"{progress.seen / max(progress.seconds, 1e-9):.0f} img/s")
        except KeyboardInterrupt:
            sync_progress()  # fold this epoch's device sums into progress; run() saves it
            raise


def _loaders(data: Cifar10, config: TrainConfig) -> tuple[CifarLoader, CifarLoader, dict]:
    """The training and test loaders, and what they hold (recorded in config.json, checked on resume)."""
    train_loader = CifarLoader(data.x_train, data.y_train, config.batch_size, train=True, seed=config.seed)
    test_loader = CifarLoader(data.x_test, data.y_test, config.eval_batch_size, train=False)
    return train_loader, test_loader, {"data_source": data.source, "train_images": train_loader.num_images,
                                       "test_images": test_loader.num_images}


def _subset(data: Cifar10, config: TrainConfig, console) -> Cifar10:
    """The first --subset training and --test-subset test images, saying so if there are fewer."""
    for option, asked, have, which in (("--subset", config.subset, len(data.x_train), "training"),
                                       ("--test-subset", config.test_subset, len(data.x_test), "test")):
        if asked is not None and asked > have:
            notice(console, f"{option} {asked} is more than the {have} {which} images of {data.source}: "
                             f"using all {have}")
    return data.subset(config.subset, config.test_subset)


def _smaller_lr_advice(config: TrainConfig, last_saved: Progress | None, out: Path) -> str:
    smaller = f"--lr {config.lr / 10:g}"
    return (f"start again with a smaller learning rate ({smaller})" if last_saved is None else
            f"continue it with a smaller learning rate: minibn train --resume --out {out} {smaller}")


def _kept(last_saved: Progress | None, out: Path, advice: str | None = None) -> str:
    """What is left of the run after an error, and what to do next."""
    if last_saved is None:
        return f"no checkpoint was saved yet; {advice or 'fix the cause, then start the run again'}"
    where = (f"after epoch {last_saved.epoch}" if last_saved.step_in_epoch == 0 else
             f"in epoch {last_saved.epoch + 1} at step {last_saved.step_in_epoch}")
    return (f"the last good checkpoint ({out / 'checkpoint.npz'}, {where}) is kept; "
            f"{advice or f'fix the cause (disk space, permissions), then: minibn train --resume --out {out}'}")


def _summary(out: Path, model: Module, config: TrainConfig, trainable: int) -> dict:
    records, _ = read_records(out / "metrics.jsonl")
    if not records:
        raise ValueError(f"{out / 'metrics.jsonl'} holds no epochs; start the run again")
    summary = {"best_test_acc": max(r["test_acc"] for r in records), "final_test_acc": records[-1]["test_acc"],
               "trainable_parameters": trainable, "gamma_below": gamma_fractions(model),
               "train_seconds": sum(r["seconds"] for r in records), "epochs": len(records),
               "depth": config.depth, "width": config.width, "train": config.train}
    write_json(out / "summary.json", summary)
    return summary
