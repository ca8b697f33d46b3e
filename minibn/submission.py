"""Grading a student's file in its own process, so that nothing in it can stop or fool the grading of the rest.

``grade_file`` runs ``python -m minibn.submission FILE RESULTS ...`` with a time limit. That child
imports the file, runs its exercise's checks, and appends one JSON line per check to RESULTS, then a
last line that says it finished. So an ``exit()``, ``os._exit()``, a crash, an endless loop or an
import error in the file ends as that file's error record, with the checks done so far kept, and
the grader goes on with the next file. The student's printing goes to the child's standard output
and error, a pipe of which the parent keeps only the head and the tail: it never mixes with the
grades, and a flood costs neither memory nor disk.

A child process is not a sandbox: the student's code runs with the grader's rights. It can read
and write files, use the network, start processes (they are killed with the child's process group),
and, if it means to, write a forged RESULTS line. This guards against accidents, not against a
cheat: see lessons/INSTRUCTORS.md for running the grader in a container.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

from minibn.grading import Record

DEFAULT_TIMEOUT = 60.0  # seconds per file: the reference solutions take about one
OUTPUT_KEPT = 2000      # bytes of a file's printing kept from its start, and as many from its end
_DONE = {"done": True}


@dataclass
class Graded:
    """One file's verdict: its exercise ("" if unknown), one record per checked input, and what it printed."""
    path: str
    exercise: str
    records: list[Record]
    output: str


def grade_file(path: str, seed: int, backend_name: str, timeout: float = DEFAULT_TIMEOUT) -> Graded:
    """Grade the exercise file at ``path`` in a child process that may run for ``timeout`` seconds."""
    exercise = _declared_exercise(path)
    with tempfile.TemporaryDirectory(prefix="minibn-grade-") as folder:
        results = Path(folder) / "results.jsonl"
        minibn_root = str(Path(__file__).resolve().parents[1])  # the child imports this very minibn
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (minibn_root, os.environ.get("PYTHONPATH"))
                                                          if p)}
        # cwd: the temporary folder, as -m puts it first on sys.path (a student's numpy.py must not shadow NumPy)
        child = subprocess.Popen(
            [sys.executable, "-m", "minibn.submission", str(Path(path).resolve()), str(results), str(seed),
             backend_name], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            cwd=folder, env=env, start_new_session=True)  # its own process group: killed as one
        output = _OutputKeeper(child.stdout)
        output.start()
        timed_out = False
        try:
            child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:  # also on Ctrl-C in the parent, and for what the file started in the background
            _kill_group(child)
            child.wait()
            output.join(timeout=5)  # unless something the file started left the group and holds the pipe
        lines = results.read_text(errors="replace").splitlines() if results.exists() else []
    records, finished = [], False
    for line in lines:
        try:
            entry = json.loads(line)
            if entry == _DONE:
                finished = True
            elif isinstance(entry, dict):
                exercise = str(entry["exercise"])
            else:
                records += [Record(**fields) for fields in entry]
        except (ValueError, TypeError, KeyError):
            continue  # a line torn by the time limit (or written by the file itself)
    problem = None
    if timed_out:
        problem = (f"stopped after {timeout:g} s, the time limit (--timeout): an endless loop, or far too slow; "
                   "the checks after the last one shown were not run")
    elif child.returncode < 0:
        problem = f"the grading process was killed by signal {signal.Signals(-child.returncode).name} (a crash)"
    elif not finished or child.returncode != 0:
        problem = (f"the file ended the grading process (exit status {child.returncode}) before its checks "
                   "finished: a submission must not call exit() or os._exit()")
    elif not records:
        problem = "no check ran"
    if problem:
        last_line = output.text().strip().rsplit("\n", 1)[-1][:200]
        if last_line and not timed_out:  # a crash's own words, say
            problem += f"; the last line it printed: {last_line}"
        records.append(Record(exercise, Path(path).name, "", "error", message=problem))
    return Graded(str(path), exercise, records, output.text())


def _declared_exercise(path: str) -> str:
    """The name in the file's ``EXERCISE = "..."`` line, read without running the file ("" if none)."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:  # unreadable: the child's import says why, as the file's error
        return ""
    found = re.search(r"""^EXERCISE\s*=\s*["'](\w+)["']""", text, re.MULTILINE)
    return found.group(1) if found else ""


def _kill_group(child: subprocess.Popen) -> None:
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # already gone


class _OutputKeeper(threading.Thread):
    """Reads a pipe to its end, keeping its first and last OUTPUT_KEPT bytes."""

    def __init__(self, pipe):
        super().__init__(daemon=True)
        self.pipe, self.head, self.tail, self.total = pipe, b"", b"", 0

    def run(self) -> None:
        while chunk := os.read(self.pipe.fileno(), 1 << 16):
            self.total += len(chunk)
            if len(self.head) < OUTPUT_KEPT:
                room = OUTPUT_KEPT - len(self.head)
                self.head, chunk = self.head + chunk[:room], chunk[room:]
            self.tail = (self.tail + chunk)[-OUTPUT_KEPT:]
        self.pipe.close()

    def text(self) -> str:
        left_out = self.total - len(self.head) - len(self.tail)
        middle = f"\n[... {left_out:,} bytes left out ...]\n" if left_out else ""
        return (self.head + middle.encode() + self.tail).decode(errors="replace")


# ---- the child ------------------------------------------------------------------------------------------------------
def _describe(error: BaseException, path: str) -> str:
    """An exception of the student's code in one line, with the line of their file where it happened."""
    if isinstance(error, SystemExit):
        return f"the file called exit({error.code!r}): a submission must not exit; the grader records it as an error"
    where = [frame for frame in traceback.extract_tb(error.__traceback__) if frame.filename == path]
    line = f" (line {where[-1].lineno} of {Path(path).name})" if where else ""
    return f"{type(error).__name__}: {error}{line}"


def _child(path: str, results: str, seed: int, backend_name: str) -> None:
    import numpy as np

    from minibn import backend
    from minibn.exercises import EXERCISES, load_exercise
    from minibn.grading import run_check
    backend.use_backend(backend_name)
    with open(results, "a") as out:
        def emit(entry) -> None:
            out.write(json.dumps(entry) + "\n")
            out.flush()

        exercise = _declared_exercise(path)
        try:
            module = load_exercise(path)
            exercise = module.EXERCISE
            emit({"exercise": exercise})
            checks = EXERCISES[exercise].checks(module, np.random.default_rng(seed))
        except BaseException as error:  # SystemExit too: nothing the file does may end the grading
            emit([asdict(Record(exercise, Path(path).name, "", "error", message=_describe(error, path)))])
            emit(_DONE)
            return
        for check in checks:
            try:
                records = run_check(check, exercise)
            except BaseException as error:
                records = [Record(exercise, check.name, "", "error", message=_describe(error, path))]
            emit([asdict(record) for record in records])
        emit(_DONE)


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])
