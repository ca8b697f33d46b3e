"""What `minibn sweep` prints of its grid: the state of every run (--status), and the results of its own runs."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from minibn.cli.common import console


def show_status(specs) -> Counter:
    from minibn.launch.runs import epochs_done
    from minibn.launch.slurm import SlurmError, states
    root = Path(specs[0].folder).parent
    try:
        rows = states(specs, root)
    except SlurmError as error:
        raise click.ClickException(str(error)) from None
    table = Table(title=f"{root}: {len(specs)} runs")
    for column in ("run", "state", "epochs", "job", "note"):
        table.add_column(column, justify="right" if column == "epochs" else "left", overflow="fold")
    for spec, state, job, note in rows:
        color = {"finished": "green", "failed": "red", "running": "cyan"}.get(state, "")
        table.add_row(spec.name, f"[{color}]{state}[/{color}]" if color else state,
                      f"{epochs_done(spec)}/{spec.config['epochs']}", job, escape(note))
    console.print(table)
    counts = Counter(state for _, state, _, _ in rows)
    console.print(", ".join(f"{n} {state}" for state, n in sorted(counts.items())))
    return counts


def report_results(specs, root: Path, required: bool) -> bool:
    """results.csv, results.md and the figure from the grid's finished runs, leaving out (and naming) every
    other run folder under ``root``; whether there were any."""
    from minibn.analysis import plot_accuracy_vs_depth, write_results
    from minibn.launch.runs import grid_results
    try:
        rows, left_out = grid_results(specs, root)
    except OSError as error:
        raise click.ClickException(f"cannot read {root} ({error.strerror})") from None
    for name, why in left_out:
        console.print(f"[yellow]left out of the results: {escape(name)}, {escape(why)}[/yellow]")
    if not rows:
        if required:
            raise click.ClickException(f"no finished runs of this grid under {root}")
        console.print("no finished runs yet: run the same command again later to collect them")
        return False
    csv_path, md_path = write_results(rows, root)
    figure = plot_accuracy_vs_depth(rows, root / "accuracy_vs_depth.png")
    console.print(md_path.read_text())
    console.print(f"saved {csv_path}, {md_path} and {figure}")
    return True
