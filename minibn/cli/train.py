"""`minibn train` and `minibn eval`: option checking and error reporting around minibn.train."""
from __future__ import annotations

import sys
import time
from dataclasses import fields, replace
from pathlib import Path

import click
from click.core import ParameterSource
from rich.markup import escape
from rich.table import Table

from minibn import backend, fast
from minibn.cli.common import (FiniteFloatRange, backend_option, check_depth, console, fast_path_options,
                               gpu_memory_error, load_data, main, out_of_memory, select_backend, tensorboard_option)
from minibn.models import MODES
from minibn.optim import SCHEDULES





@main.command()
@backend_option
@click.option("--depth", default=20, show_default=True, callback=check_depth, help="ResNet depth, 6n+2.")
@click.option("--width", default=16, show_default=True, type=click.IntRange(min=1), help="Channels of stage 1.")
@click.option("--train", "mode", default="bn", show_default=True, type=click.Choice(MODES),
              help="Which parameters train (the experiment's condition).")
@click.option("--epochs", default=160, show_default=True, type=click.IntRange(min=1))
@click.option("--batch-size", default=128, show_default=True, type=click.IntRange(min=2))
@click.option("--lr", default=0.1, show_default=True, type=FiniteFloatRange(min=0, min_open=True),
              help="Peak learning rate; with --resume, a new one applies from there on (recorded in config.json).")
@click.option("--momentum", default=0.9, show_default=True, type=FiniteFloatRange(0, 1, max_open=True))
@click.option("--weight-decay", default=1e-4, show_default=True, type=FiniteFloatRange(min=0))
@click.option("--schedule", default="multistep", show_default=True, type=click.Choice(SCHEDULES),
              help="multistep: x0.1 at 50% and 75% of the run.")
@click.option("--warmup-epochs", default=0.0, show_default=True, type=FiniteFloatRange(min=0),
              help="Linear learning-rate warmup.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0),
              help="Seeds init, the mask and the data order.")
@click.option("--data", default="auto", show_default=True, type=click.Choice(["auto", "cifar10", "sample"]),
              help="auto: CIFAR-10 if --data-dir is given or it is found, else the bundled sample; "
                   "cifar10 downloads it if missing.")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Folder holding cifar-10-batches-py (or it).")
@click.option("--subset", type=click.IntRange(min=2), help="Train on the first N training images only.")
@click.option("--test-subset", type=click.IntRange(min=1), help="Evaluate on the first N test images only.")
@click.option("--out", type=click.Path(file_okay=False), help="Run folder [default: runs/<generated name>].")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its checkpoint (only --lr may change).")
@fast_path_options
@tensorboard_option
def train(backend_name, depth, width, mode, epochs, batch_size, lr, momentum, weight_decay, schedule, warmup_epochs,
          seed, data, data_dir, subset, test_subset, out, resume, use_fast_cpu, use_kernels, tensorboard):
    """Train a CIFAR ResNet; by default the paper's recipe, training only BatchNorm."""
    from minibn.runs import RunFolderError, run_folder_lock
    from minibn.train import Interrupted, TrainConfig, TrainingStopped, run
    config = TrainConfig(depth=depth, width=width, train=mode, epochs=epochs, batch_size=batch_size, lr=lr,
                         momentum=momentum, weight_decay=weight_decay, schedule=schedule,
                         warmup_epochs=warmup_epochs, seed=seed, data=data, subset=subset, test_subset=test_subset)
    if resume and not out:
        raise click.UsageError("--resume needs --out DIR, the run to continue")
    if warmup_epochs > epochs:  # also keeps warmup_epochs * steps a finite number
        raise click.UsageError(f"--warmup-epochs {warmup_epochs:g} is longer than the run (--epochs {epochs}); warm "
                               f"up for at most the run's epochs (the paper's recipe: none)")
    if resume and not (Path(out) / "checkpoint.npz").exists():  # checked before locking: the lock writes a file
        raise click.ClickException(f"no checkpoint at {Path(out) / 'checkpoint.npz'}: nothing to resume")
    out = out or f"runs/resnet{depth}-{mode.replace('+', '-')}-seed{seed}-{time.strftime('%Y%m%d-%H%M%S')}"
    try:
        with run_folder_lock(Path(out), create=not resume):  # before the data loads: a bad --out fails at once
            if resume:
                config = resumed_config(config, Path(out))
                data_dir = data_dir or saved_data_dir(Path(out))
            elif (Path(out) / "checkpoint.npz").exists():
                raise click.UsageError(f"{out} already holds a run; pass --resume to continue it, or choose "
                                       f"another --out")
            select_backend(backend_name)
            fast.use(fast_cpu=use_fast_cpu, kernels=use_kernels)
            dataset = load_data(config.data, data_dir)
            console.print(f"ResNet-{config.depth} (width {config.width}), training {config.train}, on "
                          f"{backend.backend_name()}, data: {dataset.source}; run folder {out}")
            summary = run(config, dataset, Path(out), resume=resume, console=console,
                          tensorboard=tensorboard)
    except Interrupted as stop:
        console.print(f"[yellow]{escape(str(stop))}[/yellow]")
        sys.exit(130)
    except (TrainingStopped, ValueError, RunFolderError) as error:
        raise click.ClickException(str(error)) from None
    except Exception as error:
        if gpu_memory_error(error):
            raise out_of_memory(config.batch_size, smallest=2, resumed=resume) from None
        raise
    print_summary(summary, out)


def resumed_config(asked, out: Path):
    """The checkpoint's config, with a new --lr if one was given; UsageError for any other option that differs."""
    from minibn.checkpoint import TrainConfig, check_model_size, read_run_checkpoint
    ctx = click.get_current_context()
    meta, model_state, _ = read_run_checkpoint(out)
    check_model_size(out / "checkpoint.npz", meta["config"], model_state, width_only=True)  # before it is built
    saved = TrainConfig(**meta["config"])
    parameter_of = {"train": "mode"}  # the config's field -> the name of the parameter that sets it
    option_of = {param.name: param.opts[0] for param in ctx.command.params}  # "mode" -> "--train"
    given = {field.name for field in fields(TrainConfig) if ctx.get_parameter_source(
        parameter_of.get(field.name, field.name)) == ParameterSource.COMMANDLINE}
    for name in sorted(given - {"lr"}):  # a resumed run may only lower (or raise) its learning rate
        if getattr(asked, name) != getattr(saved, name):
            option = option_of[parameter_of.get(name, name)]
            raise click.UsageError(f"{option} {getattr(asked, name)} differs from the run being resumed "
                                   f"({getattr(saved, name)}); leave it out (only --lr may change)")
    return replace(saved, lr=asked.lr) if "lr" in given else saved


def saved_data_dir(out: Path) -> str | None:
    """The data folder the run was trained on, if it is still there (so --resume needs no --data-dir)."""
    from minibn.run_files import read_config
    source = read_config(out).get("data_source")
    return source if isinstance(source, str) and Path(source).is_dir() else None


def print_summary(summary: dict, out) -> None:
    table = Table(title=f"ResNet-{summary['depth']}, training {summary['train']}: summary")
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_row("best test accuracy", f"{summary['best_test_acc']:.2%}")
    table.add_row("final test accuracy", f"{summary['final_test_acc']:.2%}")
    table.add_row("trainable parameters", f"{summary['trainable_parameters']:,}")
    for threshold, fraction in summary["gamma_below"].items():
        table.add_row(f"|gamma| < {threshold}", f"{fraction:.1%}")
    table.add_row("training time", f"{summary['train_seconds']:.1f} s over {summary['epochs']} epochs")
    table.add_row("run folder", str(out))
    console.print(table)


@main.command(name="eval")
@backend_option
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False))
@click.option("--data", default="auto", show_default=True, type=click.Choice(["auto", "cifar10", "sample"]))
@click.option("--data-dir", type=click.Path(file_okay=False))
@click.option("--batch-size", default=1000, show_default=True, type=click.IntRange(min=1))
@fast_path_options
def evaluate_command(backend_name, checkpoint, data, data_dir, batch_size, use_fast_cpu, use_kernels):
    """Report the test accuracy of a checkpoint written by `minibn train`."""
    from minibn.data import CifarLoader
    from minibn.checkpoint import model_from_checkpoint
    from minibn.train import evaluate
    select_backend(backend_name)
    fast.use(fast_cpu=use_fast_cpu, kernels=use_kernels)
    try:
        model, meta = model_from_checkpoint(Path(checkpoint))
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    dataset = load_data(data, data_dir, purpose="evaluating")
    loader = CifarLoader(dataset.x_test, dataset.y_test, batch_size, train=False)
    try:
        loss, acc = evaluate(model, loader)
    except Exception as error:
        if gpu_memory_error(error):
            raise out_of_memory(batch_size, smallest=1) from None
        raise
    config = meta["config"]
    console.print(f"ResNet-{config['depth']} ({config['train']}) after {meta['progress']['epoch']} epochs: "
                  f"test accuracy {acc:.2%}, loss {loss:.4f} on {loader.num_images} images of {dataset.source}")
