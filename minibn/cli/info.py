"""`minibn info` and `minibn gradcheck`."""
from __future__ import annotations

import platform

import click
from rich.markup import escape
from rich.table import Table

import minibn
from minibn import backend
from minibn.cli.common import backend_option, console, main, select_backend


@main.command()
@backend_option
def info(backend_name):
    """Show the version, the backend chosen and why, the device, and library versions."""
    select_backend(backend_name)
    import numpy as np
    table = Table(title="minibn info", show_header=False)
    table.add_row("minibn", minibn.__version__)
    table.add_row("python", platform.python_version())
    table.add_row("backend", backend.backend_name())
    table.add_row("why", escape(backend.backend_reason()))
    for key, value in backend.device_description().items():
        table.add_row(key, escape(str(value)))
    table.add_row("numpy", np.__version__)
    table.add_row("BLAS", _blas_name())
    try:
        import cupy
        table.add_row("cupy", cupy.__version__)
    except ImportError:
        table.add_row("cupy", "not installed")
    console.print(table)


def _blas_name() -> str:
    import numpy as np
    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version', '')}".strip()
    except Exception:  # older NumPy: no dict mode
        return "unknown"



@main.command()
@backend_option
@click.argument("exercise", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("--seed", default=0, show_default=True, help="Seed of the random inputs and upstream gradients.")
def gradcheck(backend_name, exercise, seed):
    """Check every op's and layer's backward against central differences (float64).

    With EXERCISE (a lesson exercise file), grade the backward passes written there instead.
    """
    select_backend(backend_name)
    if exercise:
        from minibn.exercises import exercise_checks
        try:
            checks = exercise_checks(exercise, seed)
        except Exception as error:  # a student's file may fail to import: show why, in one line
            raise click.ClickException(f"could not load {exercise}: {type(error).__name__}: {error}") from None
    else:
        from minibn.checks import all_checks
        checks = all_checks(seed)
    failed = run_checks(checks, title=f"gradcheck on {backend.backend_name()} (float64)")
    if failed:
        raise click.ClickException(f"{failed} gradient check(s) FAILED")
    console.print(f"[green]all {len(checks)} checks passed[/green]")


def run_checks(checks, title: str) -> int:
    """Run gradient checks, print one table row per input, and return how many checks failed."""
    table = Table(title=title)
    for column in ("op", "input", "shape", "max abs err", "max rel err", "result"):
        table.add_column(column, justify="right" if "err" in column else "left")
    failed, hints = 0, []
    for check in checks:
        try:
            results = minibn.gradcheck(check.fn, check.inputs, names=check.names,
                                       max_elements=check.max_elements)
        except Exception as error:
            table.add_row(check.name, "", check.shapes, "", "", f"[red]ERROR[/red] {type(error).__name__}: {error}")
            failed += 1
            hints.append(check.hint)
            continue
        ok = all(r.passed for r in results)
        failed += not ok
        if not ok:
            hints.append(check.hint)
        for r in results:
            verdict = "[green]PASS[/green]" if r.passed else (
                f"[red]FAIL[/red] at {r.worst_index}: backward {r.analytic:.6g}, numerical {r.numeric:.6g}")
            table.add_row(check.name, r.name, "x".join(map(str, r.shape)), f"{r.max_abs_err:.2e}",
                          f"{r.max_rel_err:.2e}", verdict)
    console.print(table)
    for hint in dict.fromkeys(h for h in hints if h):
        console.print(f"[yellow]hint:[/yellow] {hint}")
    return failed
