"""Which files of a class's folder are submissions, read once, up front, with a size limit.

A submission is a ``.py`` file that assigns ``EXERCISE`` at its top level, as read from its syntax
tree (not its text: a helper that mentions the word is no submission). Every other ``.py`` file is
listed as skipped, with why. A file that cannot be judged without reading more than SOURCE_LIMIT
bytes, cannot be read, or does not parse is a submission with a problem: it gets an error row, so
that no student's file disappears from the grades. Symbolic links are not followed.

The grader keeps the source it read here and hands that to the student's process, so a file that
another submission rewrites while the class is graded is still graded as it was handed in.
"""
from __future__ import annotations

import ast
import os
import stat
from dataclasses import dataclass
from pathlib import Path

SOURCE_LIMIT = 1 << 20  # bytes: an exercise file is a few kB


@dataclass
class Submission:
    path: str        # as found under the folder given
    name: str        # relative to that folder: Gradescope's tests are named by it
    source: bytes    # as read before any grading started
    exercise: str    # the string assigned to EXERCISE, or "" (not a literal: the file's import decides)
    problem: str = ""  # why it gets an error row instead of being run


def find_submissions(target: str, exercises) -> tuple[list[Submission], list[tuple[str, str]]]:
    """(the submissions, [(path, why skipped)]) of a file or of every ``.py`` file below a folder."""
    if not Path(target).is_dir():
        submission = _read(Path(target).resolve(), Path(target).name, exercises, alone=True)
        return ([submission] if isinstance(submission, Submission) else
                [Submission(target, Path(target).name, b"", "", submission)]), []
    found, skipped = [], []

    def unlisted(error: OSError) -> None:
        skipped.append((str(error.filename), f"cannot be listed: {error.strerror or error}"))
    for folder, subfolders, files in os.walk(target, onerror=unlisted):  # does not enter linked folders
        subfolders.sort()
        skipped += [(os.path.join(folder, name), "a symbolic link to a folder: not followed")
                    for name in subfolders if os.path.islink(os.path.join(folder, name))]
        for file in sorted(f for f in files if f.endswith(".py")):
            path = Path(folder) / file
            result = _read(path, str(path.relative_to(target)), exercises, alone=False)
            if isinstance(result, Submission):
                found.append(result)
            else:
                skipped.append((str(path), result))
    return found, skipped


def _read(path: Path, name: str, exercises, alone: bool) -> Submission | str:
    """The submission at ``path``, or why it is skipped."""
    def error(problem: str) -> Submission:
        return Submission(str(path), name, b"", "", problem)
    try:
        info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode):
            return "a symbolic link: not followed"
        if not stat.S_ISREG(info.st_mode):
            return "not a regular file"
        if info.st_size > SOURCE_LIMIT:
            return error(f"{info.st_size:,} bytes, over the {SOURCE_LIMIT:,}-byte limit for a submission: not read")
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as file:
            source = file.read(SOURCE_LIMIT + 1)
    except OSError as reason:
        return error(f"cannot be read: {reason.strerror or reason}")
    if len(source) > SOURCE_LIMIT:  # it grew since
        return error(f"over the {SOURCE_LIMIT:,}-byte limit for a submission: not read")
    try:
        tree = ast.parse(source, filename=str(path))
    except (SyntaxError, ValueError, RecursionError, MemoryError) as reason:  # ValueError: a null byte
        line = f" (line {reason.lineno})" if getattr(reason, "lineno", None) else ""
        return error(f"does not parse as Python: {getattr(reason, 'msg', reason)}{line}")
    assigned = _assigned_names(tree)
    if "EXERCISE" not in assigned:
        why = (f"assigns {', '.join(n for n in assigned if n.upper() == 'EXERCISE')}, not EXERCISE (names are "
               "case-sensitive)" if any(n.upper() == "EXERCISE" for n in assigned)
               else "does not assign EXERCISE at its top level (a helper file?)")
        return error(f"{why}: an exercise file must set EXERCISE to one of {', '.join(exercises)}") if alone else why
    value = assigned["EXERCISE"]
    exercise = value.value if isinstance(value, ast.Constant) and isinstance(value.value, str) else ""
    if exercise and exercise not in exercises:
        return Submission(str(path), name, source, exercise,
                          f"EXERCISE is {exercise!r}: it must be one of {', '.join(exercises)}")
    return Submission(str(path), name, source, exercise)


def _assigned_names(tree: ast.Module) -> dict[str, ast.expr | None]:
    """name -> value of each plain assignment at the module's top level (``NAME = ...``, ``NAME: T = ...``)."""
    names = {}
    for statement in tree.body:
        if isinstance(statement, ast.Assign):
            for target in statement.targets:
                if isinstance(target, ast.Name):
                    names[target.id] = statement.value
        elif isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
            names[statement.target.id] = statement.value
    return names
