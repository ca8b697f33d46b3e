"""The student's side of grading: ``python -m minibn.student_process BACKEND``, started by minibn/submission.py.

It reads one .npz from standard input: the student's source (read by the grader, up front), its path,
and the inputs of every exercise's cases. It runs the source as a module, then the cases of the
exercise the module names, and writes frames to standard output: each an 8-byte length and an .npz
of arrays (the exercise's name; per case its index and the arrays the student's code returned, or
a status and a message; then "done"). Before the student's code runs, standard output is moved away:
what the student prints goes to standard error, which the grader keeps apart.

This process never decides a verdict: the grader compares what it sends with the reference. It is
told nothing of where the grades go, and its working folder is a temporary one that the grader owns.
"""
from __future__ import annotations

import io
import os
import sys
import traceback
import types
from pathlib import Path

import numpy as np


def write_frame(out, arrays: dict) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    payload = buffer.getvalue()
    out.write(len(payload).to_bytes(8, "big") + payload)
    out.flush()


def _describe(error: BaseException, path: str) -> str:
    """An exception of the student's code in one line, with the line of their file where it happened."""
    if isinstance(error, SystemExit):
        return f"the file called exit({error.code!r}): a submission must not exit; the grader records it as an error"
    where = [frame for frame in traceback.extract_tb(error.__traceback__) if frame.filename == path]
    line = f" (line {where[-1].lineno} of {Path(path).name})" if where else ""
    return f"{type(error).__name__}: {error}{line}"


def _load(source: bytes, path: str) -> types.ModuleType:
    """Run the source the grader read as a module named after its file; its own folder is importable (last on
    sys.path, so that a student's numpy.py cannot shadow NumPy)."""
    name = Path(path).stem if Path(path).stem not in sys.modules else f"submission_{Path(path).stem}"
    module = types.ModuleType(name)
    module.__file__ = path
    sys.modules[name] = module  # dataclasses and pickling look a module up by name
    sys.path.append(str(Path(path).parent))
    exec(compile(source, path, "exec"), module.__dict__)
    return module


def _numeric(name: str, value) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name} is not an array of numbers (dtype {array.dtype})")
    return array


def main(backend_name: str, payload: dict) -> None:
    results = os.fdopen(os.dup(1), "wb")  # the grader's channel; fd 1 becomes standard error for the student
    os.dup2(2, 1)
    sys.stdin.close()  # nothing more to read: the payload was read before any student code runs
    from minibn import backend
    from minibn.exercise_cases import RUNS, WRT
    from minibn.exercises import EXERCISES
    from minibn.tensor import BackwardContractError
    backend.use_backend(backend_name)
    cases: dict[str, dict[int, dict]] = {}
    for key, value in payload.items():
        if key.count("/") == 2:
            exercise, index, name = key.split("/")
            cases.setdefault(exercise, {}).setdefault(int(index), {})[name] = value
    path = str(payload["path"])
    try:
        module = _load(payload["source"].tobytes(), path)
        exercise = getattr(module, "EXERCISE", None)
        if exercise not in EXERCISES:
            raise ValueError(f"{Path(path).name} must set EXERCISE to one of {', '.join(EXERCISES)}")
    except BaseException as error:  # SystemExit too: nothing the file does may end the grading
        write_frame(results, {"status": np.array("error"), "message": np.array(_describe(error, path))})
        write_frame(results, {"done": np.array(True)})
        return
    write_frame(results, {"exercise": np.array(exercise)})
    for index, inputs in sorted(cases.get(exercise, {}).items()):
        try:
            sent = RUNS[exercise](module, inputs, WRT[exercise])
            frame = {name: _numeric(name, value) for name, value in sent.items()}
        except NotImplementedError as error:
            frame = {"status": np.array("not written yet"), "message": np.array(str(error) or "NotImplementedError")}
        except BackwardContractError as error:  # wrote into its gradient: wrong even where the numbers come out right
            frame = {"status": np.array("fail"), "message": np.array(str(error))}
        except BaseException as error:
            frame = {"status": np.array("error"), "message": np.array(_describe(error, path))}
        write_frame(results, {"case": np.array(index), **frame})
    write_frame(results, {"done": np.array(True)})


if __name__ == "__main__":
    main(sys.argv[1], dict(np.load(io.BytesIO(sys.stdin.buffer.read()), allow_pickle=False)))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # "done" is sent: a thread or an exit handler the student's file left behind neither delays nor fails it
