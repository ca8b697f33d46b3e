"""Training a CIFAR ResNet: the loop, evaluation, logs and checkpoints that survive interruptions.

A run lives in one folder: config.json (what was asked), metrics.jsonl (one line
per epoch), checkpoint.npz (everything needed to continue, written atomically
after every epoch and on Ctrl-C) and summary.json at the end.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from minibn import backend
from minibn import functional as F
from minibn.analysis import fraction_below, gamma_by_stage
from minibn.data import Cifar10, CifarLoader
from minibn.models import cifar_resnet, set_trainable
from minibn.nn import Module, load, save
from minibn.optim import SGD, learning_rate
from minibn.stop_signals import StopSignals
from minibn.tensor import no_grad

LOG_EVERY = 20  # steps between the progress updates (the only times the loop waits for the GPU)


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


class TrainingStopped(Exception):
    """The run stopped early (NaN loss); the message says why and which checkpoint is kept."""


class Interrupted(Exception):
    """Ctrl-C, SIGTERM or SIGUSR1 (see StopSignals): a checkpoint was saved and the run can be resumed."""


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
                    best_acc: float) -> None:
    """Model (with BN buffers and mask), optimizer state and progress in one .npz, written atomically."""
    meta = {"config": asdict(config), "progress": asdict(progress), "best_test_acc": best_acc,
            "rng": {"kind": "numpy default_rng([seed, epoch])", "seed": config.seed}}
    arrays = {f"model/{k}": v for k, v in model.state_dict().items()}
    arrays.update({f"optimizer/{k}": v for k, v in optimizer.state_dict().items()})
    arrays["meta"] = np.array(json.dumps(meta))
    save(arrays, str(path))


def read_checkpoint(path: Path) -> tuple[dict, dict, dict]:
    """(meta, model state, optimizer state); ValueError with the file name if it is unreadable."""
    try:
        arrays = load(str(path))
        meta = json.loads(str(arrays.pop("meta")))
        TrainConfig(**meta["config"]), Progress(**meta["progress"])
    except FileNotFoundError:
        raise ValueError(f"no checkpoint at {path}") from None
    except Exception as error:
        raise ValueError(f"{path} is not a readable minibn checkpoint ({type(error).__name__}: {error})") from None
    model_state = {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")}
    optim_state = {k[len("optimizer/"):]: v for k, v in arrays.items() if k.startswith("optimizer/")}
    return meta, model_state, optim_state


def model_from_checkpoint(path: Path) -> tuple[Module, dict]:
    meta, model_state, _ = read_checkpoint(path)
    config = TrainConfig(**meta["config"])
    model = cifar_resnet(config.depth, config.width, seed=config.seed)
    set_trainable(model, config.train, seed=config.seed)
    try:
        model.load_state_dict(model_state)
    except (KeyError, ValueError) as error:
        raise ValueError(f"{path} does not fit a ResNet-{config.depth}: {error}") from None
    return model, meta


# ---- the loop --------------------------------------------------------------------------------------
def evaluate(model: Module, loader: CifarLoader) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over the loader, in eval mode (running BN statistics)."""
    model.eval()
    xp = backend.xp()
    loss_sum, correct = xp.zeros((), dtype=np.float64), xp.zeros((), dtype=np.int64)
    with no_grad():
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
        tensorboard: bool = False) -> dict:
    """Train (or continue training) as ``config`` says, writing the run folder ``out``. Returns the summary.

    ``tensorboard``: also write TensorBoard event files into ``out`` (minibn.tensorboard_log).
    """
    from rich.console import Console
    console = console or Console(highlight=False)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / "checkpoint.npz"
    data = data.subset(config.subset, config.test_subset)
    train_loader = CifarLoader(data.x_train, data.y_train, config.batch_size, train=True, seed=config.seed)
    test_loader = CifarLoader(data.x_test, data.y_test, config.eval_batch_size, train=False)

    model = cifar_resnet(config.depth, config.width, seed=config.seed)
    trainable = set_trainable(model, config.train, seed=config.seed)
    optimizer = SGD(model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    progress, best_acc = Progress(), 0.0
    if resume:
        meta, model_state, optim_state = read_checkpoint(checkpoint)
        model.load_state_dict(model_state)
        optimizer.load_state_dict(optim_state)
        progress, best_acc = Progress(**meta["progress"]), meta["best_test_acc"]
        _drop_records_after(out / "metrics.jsonl", progress.epoch)  # a kill between log and checkpoint
        console.print(f"resuming {out} at epoch {progress.epoch + 1}, step {progress.step_in_epoch}")
    else:
        (out / "metrics.jsonl").write_text("")
    (out / "config.json").write_text(json.dumps({**asdict(config), "trainable_parameters": trainable,
                                                 "backend": backend.backend_name(), "data_source": data.source,
                                                 "train_images": train_loader.num_images,
                                                 "test_images": test_loader.num_images}, indent=2) + "\n")
    steps_per_epoch = len(train_loader)
    total_steps = config.epochs * steps_per_epoch
    warmup_steps = round(config.warmup_epochs * steps_per_epoch)
    board = None
    if tensorboard:
        from minibn.tensorboard_log import EpochBoard
        board = EpochBoard(out, first_epoch=progress.epoch + 1)
    stop = StopSignals()
    try:
        while progress.epoch < config.epochs:
            _train_epoch(model, optimizer, train_loader, config, progress, total_steps, warmup_steps, console,
                         checkpoint, stop)
            test_loss, test_acc = evaluate(model, test_loader)
            best_acc = max(best_acc, test_acc)
            record = {"epoch": progress.epoch + 1,
                      "lr": learning_rate(progress.global_step - 1, total_steps, config.lr, config.schedule,
                                          warmup_steps=warmup_steps),
                      "train_loss": progress.loss_sum / progress.seen, "train_acc": progress.correct / progress.seen,
                      "test_loss": test_loss, "test_acc": test_acc, "seconds": progress.seconds,
                      "images_per_s": progress.seen / max(progress.seconds, 1e-9),
                      "gamma_below": gamma_fractions(model)}  # how many channels BatchNorm switched off so far
            with open(out / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
            if board is not None:
                board.write(record, model)
            console.print(f"epoch {record['epoch']:>3}/{config.epochs}  lr {record['lr']:.4g}  "
                          f"train loss {record['train_loss']:.4f} acc {record['train_acc']:.2%}  "
                          f"test loss {test_loss:.4f} acc {test_acc:.2%}  {progress.seconds:.1f}s "
                          f"({record['images_per_s']:.0f} img/s)")
            progress = Progress(epoch=progress.epoch + 1, global_step=progress.global_step)
            save_checkpoint(checkpoint, model, optimizer, config, progress, best_acc)
    except KeyboardInterrupt:  # in training, evaluation or saving: progress says exactly where we are
        save_checkpoint(checkpoint, model, optimizer, config, progress, best_acc)
        raise Interrupted(f"interrupted in epoch {progress.epoch + 1} at step {progress.step_in_epoch}; "
                          f"checkpoint saved to {checkpoint}; continue with --resume") from None
    finally:
        stop.restore()
        if board is not None:
            board.close()
    return _summary(out, model, config, trainable)


def _train_epoch(model, optimizer, loader, config, progress: Progress, total_steps, warmup_steps, console,
                 checkpoint, stop: StopSignals) -> None:
    """Run the rest of the current epoch, updating ``progress`` (also when Ctrl-C stops it)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeRemainingColumn
    xp = backend.xp()
    loss_sum, correct = xp.zeros((), dtype=np.float64), xp.zeros((), dtype=np.int64)
    seen = 0  # images of this epoch since this process started it (or resumed it)
    start = time.perf_counter()
    bar = Bar(TextColumn(f"epoch {progress.epoch + 1}/{config.epochs}"), BarColumn(), MofNCompleteColumn(),
              TextColumn("{task.fields[status]}"), TimeRemainingColumn(), console=console, transient=True)

    def sync_progress():
        """Fold the device sums into ``progress`` and check that the loss is finite.

        Reading the sums copies them to the host, so it waits for the GPU: this is the loop's only sync.
        """
        nonlocal loss_sum, correct, seen, start
        loss_total, correct_total = read_sums(loss_sum, correct)
        if not math.isfinite(loss_total):
            raise TrainingStopped(
                f"the loss became {loss_total} in epoch {progress.epoch + 1} near step {progress.step_in_epoch}; "
                f"the last good checkpoint ({checkpoint}) is kept; try a smaller --lr")
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


def _drop_records_after(metrics: Path, epoch: int) -> None:
    """Keep only the log lines of epochs the checkpoint has (a run killed in between logged one more)."""
    lines = metrics.read_text().splitlines() if metrics.exists() else []
    kept = [line for line in lines if line.strip() and json.loads(line)["epoch"] <= epoch]
    metrics.write_text("".join(line + "\n" for line in kept))


def _summary(out: Path, model: Module, config: TrainConfig, trainable: int) -> dict:
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    summary = {"best_test_acc": max(r["test_acc"] for r in records), "final_test_acc": records[-1]["test_acc"],
               "trainable_parameters": trainable, "gamma_below": gamma_fractions(model),
               "train_seconds": sum(r["seconds"] for r in records), "epochs": len(records),
               "depth": config.depth, "width": config.width, "train": config.train}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
