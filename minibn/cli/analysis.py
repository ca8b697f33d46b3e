"""`minibn plot` and `minibn analyze`: from runs to the paper's findings (`minibn sweep`: cli/sweep.py)."""
from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from minibn.cli.common import backend_option, console, main, select_backend


def figure_file(ctx, param, value):
    """--out of a figure: a file name with an extension matplotlib writes (.png, .pdf, .svg...), checked before
    any work. An empty name would be saved as a hidden ".png", and an unknown extension fails after the work."""
    if value is None:
        return value
    from matplotlib.backend_bases import FigureCanvasBase
    formats = FigureCanvasBase.get_supported_filetypes()
    path = Path(value)
    if not path.suffix:  # also "" and ".png", whose suffix is ""
        raise click.BadParameter(f"{value!r} is no file name with an extension; give one, e.g. curves.png")
    if path.suffix[1:].lower() not in formats:
        raise click.BadParameter(f"matplotlib cannot write {path.suffix} files; end the name with one of "
                                 f"{', '.join('.' + f for f in sorted(formats))}")
    return value


@main.command()
@backend_option
@click.argument("runs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", default="curves.png", show_default=True, type=click.Path(dir_okay=False),
              callback=figure_file, help="The figure: .png, .pdf, .svg...")
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
@click.option("--out", type=click.Path(dir_okay=False), callback=figure_file,
              help="The histogram: .png, .pdf, .svg... [default: gamma_histogram.png beside the checkpoint].")
def analyze(backend_name, checkpoint, out):
    """Report BatchNorm gamma statistics of a checkpoint: fractions near zero per stage, and a histogram."""
    from minibn.analysis import THRESHOLDS, fraction_below, gamma_by_stage, plot_gamma_histogram
    from minibn.checkpoint import model_from_checkpoint
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
