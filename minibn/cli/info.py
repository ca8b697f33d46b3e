"""`minibn info` and `minibn gradcheck`."""
from __future__ import annotations

import platform
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

import minibn
from minibn import backend, fast
from minibn.cli.common import (FiniteFloatRange, backend_option, console, device_description, fast_path_options, main,
                               select_backend)


@main.command()
@backend_option
@fast_path_options
def info(backend_name, use_fast_cpu, use_kernels):
    """Show the version, the backend chosen and why, the device, library versions, the fast paths, and
    which implementation each op of a ResNet training step runs."""
    select_backend(backend_name)
    fast.use(fast_cpu=use_fast_cpu, kernels=use_kernels)
    import numpy as np
    table = Table(title="minibn info", show_header=False)
    table.add_row("minibn", minibn.__version__)
    table.add_row("python", platform.python_version())
    table.add_row("backend", backend.backend_name())
    table.add_row("why", escape(backend.backend_reason()))
    for key, value in device_description().items():
        table.add_row(key, escape(str(value)))
    table.add_row("numpy", np.__version__)
    table.add_row("BLAS", _blas_name())
    try:
        import cupy
        table.add_row("cupy", cupy.__version__)
    except ImportError:
        table.add_row("cupy", "not installed")
    for name, on, what in fast.describe():
        table.add_row(f"fast path {name}", f"{'on' if on else 'off'}: {what}")
    console.print(table)
    ops = Table(title=f"ops of a ResNet training step on {backend.backend_name()} (minibn/fast picks them)")
    for column in ("op", "implementation", "runs"):
        ops.add_column(column)
    for op, where, phases in _ops_of_a_step():
        ops.add_row(op, where, phases)
    console.print(ops)


def _ops_of_a_step() -> list[tuple[str, str, str]]:
    """(op, the file that defines it, forward/backward) for each op of one training step of a tiny ResNet."""
    from minibn.bench import minibn_training_step
    _, step = minibn_training_step(depth=8, mode="all", batch_size=2, width=4, image_size=8)
    return fast.ops_run(step)


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
@click.argument("exercise", required=False, type=click.Path(exists=True))
@click.option("--seed", default=0, show_default=True, help="Seed of the random inputs and upstream gradients.")
@click.option("--hint", "hint_level", default=1, show_default=True, type=click.IntRange(1, 3),
              help="How much the hint says when a check fails (3 is the most; none gives the answer).")
@click.option("--format", "output_format", default="table", show_default=True,
              type=click.Choice(["table", "json", "gradescope"]),
              help="table: for a person. json: one record per checked input. gradescope: Gradescope's results.json.")
@click.option("--output", type=click.Path(dir_okay=False), help="Write the json or gradescope output to this file "
                                                                "[default: standard output].")
@click.option("--timeout", default=60.0, show_default=True, type=FiniteFloatRange(min=0, min_open=True),
              help="Seconds each exercise file may take; one that takes longer is recorded as an error.")
@fast_path_options
def gradcheck(backend_name, exercise, seed, hint_level, output_format, output, timeout, use_fast_cpu,
              use_kernels):
    """Check every op's and layer's backward against central differences (float64).

    With EXERCISE, a lesson exercise file, grade what the student wrote there instead; with a folder,
    every exercise file in it (a class's submissions, say). Each file is graded in its own process,
    with a time limit, so that an exit, a crash or an endless loop in one is that file's error; what
    it prints is kept apart from the results. The exit status is 0 when checks ran and all passed,
    1 otherwise.
    """
    from minibn.grading import failed_checks, run_check, to_gradescope, to_json
    from minibn.submission import Graded, grade_file
    select_backend(backend_name)
    fast.use(fast_cpu=use_fast_cpu, kernels=use_kernels)
    if output:  # checked before grading, not after a class's worth of it
        _check_writable(output)
    if exercise:
        graded = [grade_file(str(path), seed, backend.backend_name(), timeout) for path in _exercise_files(exercise)]
    else:
        graded = [Graded("", "", [record for check in _library_checks(seed) for record in run_check(check)], "")]
    records = [record for file in graded for record in file.records]
    if output_format == "table":
        for file in graded:
            _print_table(file, hint_level)
    else:
        from minibn.exercises import EXERCISES
        hints = {name: definition.hints[0] for name, definition in EXERCISES.items()}
        text = (to_gradescope(records, hints) if output_format == "gradescope"
                else to_json([(file.path or None, record) for file in graded for record in file.records]))
        if output:
            try:
                Path(output).write_text(text + "\n")
            except OSError as error:
                raise click.ClickException(f"cannot write --output {output}: {error.strerror or error}") from None
        else:
            click.echo(text)
    failed = sum(failed_checks(file.records) for file in graded)
    if failed or not records:
        raise click.ClickException(f"{failed} check(s) FAILED" if records else "no check ran")
    if output_format == "table":
        checks = sum(len({(r.exercise, r.check) for r in file.records}) for file in graded)
        console.print(f"[green]all {checks} checks passed[/green]")


def _check_writable(output: str) -> None:
    """Make --output's folder, and fail in one line now if that or the file cannot be written."""
    try:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        existed = Path(output).exists()
        with open(output, "a"):
            pass
        if not existed:
            Path(output).unlink()  # no empty results file left behind if the grading is stopped
    except OSError as error:
        raise click.UsageError(f"cannot write --output {output}: {error.strerror or error}") from None


def _library_checks(seed):
    from minibn.checks import all_checks
    return all_checks(seed)


def _exercise_files(exercise: str) -> list[Path]:
    """The file, or every exercise file (one that sets EXERCISE) in the folder."""
    if Path(exercise).is_file():
        return [Path(exercise)]
    paths = [path for path in sorted(Path(exercise).rglob("*.py"))  # not a folder or a broken link named *.py
             if path.is_file() and "EXERCISE" in _text(path)]  # the rest: helper files in a submission folder
    if not paths:
        raise click.ClickException(f"no exercise files (files that set EXERCISE) in {exercise}")
    return paths


def _text(path: Path) -> str:
    """The file's text; "EXERCISE" where it cannot be read, so that it is graded, as an error, not skipped."""
    try:
        return path.read_text(errors="replace")
    except OSError:
        return "EXERCISE"


def _print_table(file, hint_level: int) -> None:
    """One row per checked input; then, for a failed exercise, what is wrong and a hint; then what it printed."""
    from minibn.exercises import EXERCISES
    from minibn.grading import NOT_WRITTEN
    path, name, records = file.path, file.exercise if file.exercise in EXERCISES else "", file.records
    title = f"{path}: {EXERCISES[name].title}" if name else (path or "minibn's ops and layers")
    # the title on a line of its own, not the table's: a table wraps its title to the table's width
    console.print(f"[bold]gradcheck on {backend.backend_name()} (float64): {escape(title)}[/bold]")
    table = Table()
    for column in ("check", "input", "max abs err", "max rel err", "result"):
        table.add_column(column, justify="right" if "err" in column else "left")
    for r in records:
        if r.status == "pass":
            verdict = "[green]PASS[/green]"
        elif r.status in (NOT_WRITTEN, "error") or r.worst_index is None:
            verdict = f"[red]{r.status.upper()}[/red] {escape(r.message)}"
        else:
            verdict = f"[red]FAIL[/red] at {tuple(r.worst_index)}: yours {r.yours:.6g}, expected {r.expected:.6g}"
        errors = ("", "") if r.max_abs_err is None else (f"{r.max_abs_err:.2e}", f"{r.max_rel_err:.2e}")
        table.add_row(escape(r.check), escape(r.input), *errors, verdict)
    console.print(table)
    if file.output.strip():
        console.print(f"[dim]what {escape(path)} printed:[/dim]\n{escape(file.output.rstrip())}")
    failed = [r for r in records if not r.passed]
    if not failed or not path:
        return
    console.print(f"[red]{escape(failed[0].sentence())}[/red]")
    if not name:
        return
    hints = EXERCISES[name].hints
    not_started = all(r.status == NOT_WRITTEN for r in failed)
    level = 1 if not_started else hint_level  # not started yet: the first hint only
    for number in range(1, level + 1):
        console.print(f"[yellow]hint {number} of 3:[/yellow] {escape(hints[number - 1])}")
    if level < 3 and not not_started:
        console.print(f"more: minibn gradcheck {path} --hint {level + 1}")
