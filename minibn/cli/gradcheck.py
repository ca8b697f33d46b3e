"""`minibn gradcheck`: minibn's own ops and layers, or a student's exercise file, or a class's folder of them."""
from __future__ import annotations

import os
import secrets
import signal
import tempfile
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from minibn import backend, fast
from minibn.cli.common import FiniteFloatRange, backend_option, console, fast_path_options, main, select_backend


@main.command()
@backend_option
@click.argument("exercise", required=False, type=click.Path(exists=True))
@click.option("--seed", type=click.IntRange(0, 2**32 - 1),
              help="Seed of the random inputs and upstream gradients. Grading files: drawn anew for each run and "
                   "shown, so that an answer written for one seed fails; give it to repeat a run. minibn's own "
                   "checks: 0.")
@click.option("--hint", "hint_level", default=1, show_default=True, type=click.IntRange(1, 3),
              help="How much the hint says when a check fails (3 is the most; none gives the answer).")
@click.option("--format", "output_format", default="table", show_default=True,
              type=click.Choice(["table", "json", "gradescope"]),
              help="table: for a person. json: one record per checked input. gradescope: Gradescope's results.json, "
                   "one test per file and check.")
@click.option("--output", type=click.Path(dir_okay=False), help="Write the json or gradescope output to this file "
                                                                "[default: standard output].")
@click.option("--timeout", default=60.0, show_default=True, type=FiniteFloatRange(min=0, min_open=True),
              help="Seconds each exercise file may take; one that takes longer is recorded as an error.")
@fast_path_options
def gradcheck(backend_name, exercise, seed, hint_level, output_format, output, timeout, use_fast_cpu,
              use_kernels):
    """Check every op's and layer's backward against central differences (float64).

    With EXERCISE, a lesson exercise file, grade what the student wrote there against the instructor's
    reference instead; with a folder, every file in it that assigns EXERCISE (a class's submissions, say;
    other .py files are listed as skipped). Each file is graded in its own process, with a time limit, so
    that an exit, a crash or an endless loop in one is that file's error; what it prints is kept apart
    from the results. The exit status is 0 when checks ran and all passed, 1 otherwise, 130 after Ctrl-C
    or SIGTERM (the files graded so far are written, the rest marked "not graded").
    """
    from minibn.grading import failed_checks, run_check
    from minibn.submission import Graded
    select_backend(backend_name)
    fast.use(fast_cpu=use_fast_cpu, kernels=use_kernels)
    if output and output_format == "table":  # the grades would be printed, and the file the user asked for never made
        raise click.UsageError("--output writes the json or gradescope format; add --format json (or gradescope), or "
                               "leave --output out to see the table")
    if output:  # checked before grading, not after a class's worth of it
        _check_writable(output)
    interrupted, checked_on = False, backend.backend_name()
    if exercise:
        seed = secrets.randbelow(2**31) if seed is None else seed
        try:
            graded, interrupted = _grade_files(exercise, seed, timeout, output_format)
        except click.ClickException as error:  # no submission: Gradescope still gets a results.json saying why
            if output_format == "gradescope":
                from minibn.grading import to_gradescope
                _write(output, to_gradescope([], seed=seed, message=error.message))
            raise
    else:
        seed = 0 if seed is None else seed
        graded = [Graded("", "", "", [record for check in _library_checks(seed) for record in run_check(check)], "")]
    records = [record for file in graded for record in file.records]
    if output_format == "table":
        for file in graded:
            _print_table(file, hint_level, checked_on)
    else:
        _write(output, _report(graded, output_format, seed if exercise else None))
    if interrupted:
        done = sum(1 for file in graded if not any(r.status == "not graded" for r in file.records))
        click.echo(f"Interrupted: {done} of {len(graded)} files graded, the rest marked \"not graded\"; "
                   f"run again with --seed {seed} to grade them on the same inputs.", err=True)
        raise SystemExit(130)
    if exercise and output_format == "table":
        console.print(f"inputs drawn with --seed {seed} (give it to repeat this run)")
    failed = sum(failed_checks(file.records) for file in graded)
    if failed or not records:
        raise click.ClickException(f"{failed} check(s) FAILED" if records else "no check ran")
    if output_format == "table":
        checks = sum(len({(r.exercise, r.check) for r in file.records}) for file in graded)
        console.print(f"[green]all {checks} checks passed[/green]")


def _grade_files(target: str, seed: int, timeout: float, output_format: str) -> tuple[list, bool]:
    """Grade every submission at ``target`` (a file or a folder); Ctrl-C stops, and what is left is marked."""
    import numpy as np

    from minibn.class_folder import find_submissions
    from minibn.exercise_cases import CASES
    from minibn.exercises import EXERCISES
    from minibn.grading import NOT_GRADED, Record, printable
    from minibn.submission import FILE_CHECK, Graded, grade_file
    student_backend = backend.backend_name()
    backend.use_backend("numpy")  # the reference is computed here, on the host, in float64
    submissions, skipped = find_submissions(target, list(EXERCISES))
    for path, why in skipped:
        click.echo(printable(f"skipped {path}: {why}"), err=output_format != "table")
    if not submissions:
        raise click.ClickException(f"no exercise files (files that assign EXERCISE) in {target}")
    cases = {name: build(np.random.default_rng(seed)) for name, build in CASES.items()}
    graded, previous = [], _stop_on_sigterm()
    try:
        for submission in submissions:
            try:
                graded.append(grade_file(submission, cases, student_backend, timeout))
            except Exception as error:  # noqa: BLE001  the machine's trouble (no process can start, say): one row
                graded.append(Graded(submission.path, submission.name, submission.exercise, [Record(
                    submission.exercise, FILE_CHECK, "", "error", message=f"could not be graded: {error}")], ""))
    except KeyboardInterrupt:
        graded += [Graded(s.path, s.name, s.exercise, [Record(s.exercise, FILE_CHECK, "", NOT_GRADED,
                                                              message="the grading was stopped (Ctrl-C)")], "")
                   for s in submissions[len(graded):]]
        return graded, True
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return graded, False


def _stop_on_sigterm():
    """Make SIGTERM (a scheduler's or an autograder's time limit) stop the grading as Ctrl-C does; the handler
    it replaces (None where signals cannot be set: not the main thread)."""
    def stop(signum, frame):
        raise KeyboardInterrupt
    try:
        return signal.signal(signal.SIGTERM, stop)
    except ValueError:
        return None


def _report(graded: list, output_format: str, seed: int | None) -> str:
    from minibn.exercises import EXERCISES
    from minibn.grading import to_gradescope, to_json
    if output_format == "gradescope":
        hints = {name: definition.hints[0] for name, definition in EXERCISES.items()}
        return to_gradescope([(file.name, file.records) for file in graded], hints, seed)
    return to_json([(file.path or None, record) for file in graded for record in file.records], seed)


def _write(output: str | None, text: str) -> None:
    """To standard output, or to ``output`` atomically: a temporary file beside it, renamed over it."""
    if not output:
        click.echo(text)
        return
    folder = os.path.dirname(os.path.abspath(output))
    try:
        with tempfile.NamedTemporaryFile("w", dir=folder, prefix=".minibn-", suffix=".tmp", delete=False) as file:
            temporary = file.name
            file.write(text + "\n")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # as open() would have made it, not the temporary file's 0600
        os.replace(temporary, output)
    except OSError as error:
        if "temporary" in locals():
            Path(temporary).unlink(missing_ok=True)
        raise click.ClickException(f"cannot write --output {output}: {error.strerror or error}") from None


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


def _print_table(file, hint_level: int, checked_on: str) -> None:
    """One row per checked input; then, for a failed exercise, what is wrong and a hint; then what it printed."""
    from minibn.exercises import EXERCISES
    from minibn.grading import NOT_GRADED, NOT_WRITTEN, printable
    path, name, records = printable(file.path), file.exercise if file.exercise in EXERCISES else "", file.records
    title = f"{path}: {EXERCISES[name].title}" if name else (path or "minibn's ops and layers")
    # the title on a line of its own, not the table's: a table wraps its title to the table's width
    console.print(f"[bold]gradcheck on {checked_on} (float64): {escape(title)}[/bold]")
    table = Table()
    for column in ("check", "input", "max abs err", "max rel err", "result"):
        table.add_column(column, justify="right" if "err" in column else "left")
    for r in records:
        if r.status == "pass":
            verdict = "[green]PASS[/green]"
        elif r.status in (NOT_WRITTEN, NOT_GRADED, "error") or r.worst_index is None:
            verdict = f"[red]{r.status.upper()}[/red] {escape(printable(r.message))}"
        else:
            verdict = f"[red]FAIL[/red] at {tuple(r.worst_index)}: yours {r.yours:.6g}, expected {r.expected:.6g}"
        errors = ("", "") if r.max_abs_err is None else (f"{r.max_abs_err:.2e}", f"{r.max_rel_err:.2e}")
        table.add_row(escape(r.check), escape(r.input), *errors, verdict)
    console.print(table)
    if file.output.strip():
        console.print(f"[dim]what {escape(path)} printed:[/dim]\n{escape(printable(file.output.rstrip()))}")
    failed = [r for r in records if not r.passed]
    if not failed or not path:
        return
    console.print(f"[red]{escape(printable(failed[0].sentence()))}[/red]")
    if not name:
        return
    hints = EXERCISES[name].hints
    not_started = all(r.status == NOT_WRITTEN for r in failed)
    level = 1 if not_started else hint_level  # not started yet: the first hint only
    for number in range(1, level + 1):
        console.print(f"[yellow]hint {number} of 3:[/yellow] {escape(hints[number - 1])}")
    if level < 3 and not not_started:
        console.print(f"more: minibn gradcheck {escape(path)} --hint {level + 1}")
