"""`minibn plot`, `minibn analyze` and `minibn sweep`: from runs to the paper's findings."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from minibn import backend
from minibn.cli.common import backend_option, check_depth, console, load_data, main, select_backend
from minibn.models import MODES


@main.command()
@backend_option
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", default="curves.png", show_default=True, type=click.Path(dir_okay=False))
def plot(backend_name, runs, out):
    """Draw test accuracy and training loss per epoch for one or more run folders."""
    from minibn.analysis import plot_curves
    select_backend(backend_name, default="numpy")  # plotting reads logs only; accepted for uniformity
    try:
        path = plot_curves([Path(r) for r in runs], Path(out),
                           notice=lambda text: console.print(text, soft_wrap=True, markup=False))
    except (FileNotFoundError, ValueError, KeyError) as error:
        raise click.ClickException(str(error)) from None
    except OSError as error:
        raise click.ClickException(f"cannot write {out}: {error.strerror}; pass another --out") from None
    console.print(f"saved {path}")


@main.command()
@backend_option
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), help="Histogram PNG [default: beside the checkpoint].")
def analyze(backend_name, checkpoint, out):
    """Report BatchNorm gamma statistics of a checkpoint: fractions near zero per stage, and a histogram."""
    from minibn.analysis import THRESHOLDS, fraction_below, gamma_by_stage, plot_gamma_histogram
    from minibn.train import model_from_checkpoint
    select_backend(backend_name, default="numpy")
    try:
        model, meta = model_from_checkpoint(Path(checkpoint))
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    groups = gamma_by_stage(model)
    groups["all"] = __import__("numpy").concatenate(list(groups.values()))
    config = meta["config"]
    table = Table(title=f"ResNet-{config['depth']} trained {config['train']}, {meta['progress']['epoch']} epochs: "
                        f"BatchNorm gamma")
    for column in ("where", "channels", "mean |gamma|", *(f"|gamma| < {t:g}" for t in THRESHOLDS)):
        table.add_column(column, justify="left" if column == "where" else "right")
    for stage, gammas in groups.items():
        fractions = fraction_below(gammas)
        table.add_row(stage, str(len(gammas)), f"{abs(gammas).mean():.3f}",
                      *(f"{fractions[t]:.1%}" for t in THRESHOLDS))
    console.print(table)
    groups.pop("all")
    out = Path(out) if out else Path(checkpoint).with_name("gamma_histogram.png")
    try:
        plot_gamma_histogram(groups, f"ResNet-{config['depth']} ({config['train']}): BatchNorm gamma", out)
    except OSError as error:
        raise click.ClickException(f"cannot write {out}: {error.strerror}; pass another --out") from None
    console.print(f"saved {out}")


def int_list(ctx, param, value):
    try:
        numbers = [int(v) for v in value.split(",")]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of integers") from None
    if min(numbers) < 0:
        raise click.BadParameter(f"{value!r} holds a negative number")
    return numbers


def mode_list(ctx, param, value):
    modes = value.split(",")
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise click.BadParameter(f"unknown mode(s) {', '.join(unknown)}; choose from {', '.join(MODES)}")
    return modes


@main.command()
@backend_option
@click.option("--depths", default="14,20", show_default=True, callback=int_list)
@click.option("--modes", default="bn,all,output,random", show_default=True, callback=mode_list)
@click.option("--seeds", default="0", show_default=True, callback=int_list)
@click.option("--epochs", default=30, show_default=True, type=click.IntRange(min=1))
@click.option("--batch-size", default=128, show_default=True, type=click.IntRange(min=2))
@click.option("--data", default="auto", show_default=True, type=click.Choice(["auto", "cifar10", "sample"]))
@click.option("--data-dir", type=click.Path(file_okay=False))
@click.option("--subset", type=click.IntRange(min=2), help="Train on the first N training images only.")
@click.option("--test-subset", type=click.IntRange(min=1), help="Evaluate on the first N test images only.")
@click.option("--out", default="runs/sweep", show_default=True, type=click.Path(file_okay=False))
def sweep(backend_name, depths, modes, seeds, epochs, batch_size, data, data_dir, subset, test_subset, out):
    """Train every depth x mode x seed (skipping finished runs, resuming interrupted ones), then write
    results.csv, results.md and accuracy_vs_depth.png into --out."""
    from minibn.analysis import collect_results, plot_accuracy_vs_depth, write_results
    from minibn.runs import RunFolderError
    from minibn.train import Interrupted, TrainConfig, TrainingStopped, run
    for depth in depths:
        check_depth(None, None, depth)
    root = Path(out)
    grid = {root / f"resnet{depth}-{mode.replace('+', '-')}-seed{seed}":
            TrainConfig(depth=depth, train=mode, epochs=epochs, batch_size=batch_size, seed=seed, data=data,
                        subset=subset, test_subset=test_subset)
            for depth in depths for mode in modes for seed in seeds}
    refuse_other_settings(grid)  # before anything trains: a sweep never mixes runs of other settings
    select_backend(backend_name)
    to_train = {folder: config for folder, config in grid.items() if not (folder / "summary.json").exists()}
    dataset = load_data(data, data_dir) if to_train else None
    for folder, config in to_train.items():
        console.print(f"[bold]ResNet-{config.depth}, {config.train}, seed {config.seed}[/bold] "
                      f"on {backend.backend_name()} -> {folder}")
        try:
            run(config, dataset, folder, resume=(folder / "checkpoint.npz").exists(), console=console)
        except Interrupted as stop:
            raise click.ClickException(f"{stop}; run the same sweep again to go on") from None
        except RunFolderError as error:  # another process writes it, or the disk is full: stop the sweep
            raise click.ClickException(f"{error}; then run the same sweep again") from None
        except (TrainingStopped, ValueError) as error:
            console.print(f"[red]{folder.name} stopped: {escape(str(error))}[/red]")
    try:
        rows = collect_results(root)
        if not rows:
            raise click.ClickException(f"no finished runs under {root}")
        csv_path, md_path = write_results(rows, root)
        figure = plot_accuracy_vs_depth(rows, root / "accuracy_vs_depth.png")
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    except OSError as error:
        raise click.ClickException(f"cannot write the results into {root}: {error.strerror}") from None
    console.print(md_path.read_text())
    console.print(f"saved {csv_path}, {md_path} and {figure}")


def refuse_other_settings(grid: dict) -> None:
    """UsageError if a run folder of the grid holds a run (finished or not) of other settings than asked."""
    from minibn.runs import differences, read_config
    for folder, config in grid.items():
        if not ((folder / "checkpoint.npz").exists() or (folder / "summary.json").exists()):
            continue  # nothing to keep: the run starts afresh
        saved = read_config(folder)
        first_change = (saved.get("lr_changes") or [{}])[0]  # after `train --resume --lr`: compare the first lr
        if isinstance(first_change, dict) and "from" in first_change:
            saved["lr"] = first_change["from"]
        if other := differences(saved, asdict(config), ignore=("data", "eval_batch_size")):
            raise click.UsageError(
                f"{folder} holds a run with {', '.join(f'{k} {theirs}' for k, theirs, _ in other)}, but this sweep "
                f"asks for {', '.join(f'{k} {mine}' for k, _, mine in other)}; sweep with the run's settings, or "
                f"choose another --out (or delete {folder} to train it again)")
