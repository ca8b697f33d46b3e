"""Verdicts and reports: one record per checked input, for a person, for JSON, for Gradescope.

minibn's own checks (checks.Check: a backward against central differences; checks.ValueCheck: an
array against a reference) run here, in one process. A student's file runs in a process of its own
(minibn/submission.py) and sends back arrays only; ``grade_case`` judges them against the
instructor's reference (minibn/exercise_cases.py), here in the grader. All end as Records with the
same fields, so the table, the JSON and Gradescope's results.json read alike.
"""
from __future__ import annotations

import json
import math
import re
import unicodedata
from dataclasses import asdict, dataclass

import numpy as np

from minibn import backend
from minibn.checks import Check, ValueCheck
from minibn.exercise_cases import FUNCTIONS, ValueCase
from minibn.gradcheck import compare, gradcheck
from minibn.tensor import BackwardContractError

NOT_WRITTEN = "not written yet"
NOT_GRADED = "not graded"  # the grading was stopped (Ctrl-C) before this file
MESSAGE_LIMIT = 2000       # characters of a message from a student's process
FORWARD_TOLERANCE = {"atol": 1e-8, "rtol": 1e-6}    # the forward: the same formula, up to round-off
GRADIENT_TOLERANCE = {"atol": 1e-5, "rtol": 1e-3}   # minibn.gradcheck's, as central differences need
_ESCAPE = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)?|.)?")


@dataclass
class Record:
    """The verdict on one input of one check."""
    exercise: str            # "" for minibn's own checks
    check: str
    input: str
    status: str              # "pass", "fail", "not written yet", "error" or "not graded"
    max_abs_err: float | None = None
    max_rel_err: float | None = None
    worst_index: list | None = None
    yours: float | None = None      # the checked value at the worst element
    expected: float | None = None   # central differences, or the reference, there
    message: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def as_dict(self) -> dict:
        return {"passed": self.passed, **asdict(self)}

    def sentence(self) -> str:
        """What is wrong, where and by how much, in one line."""
        if self.status == NOT_GRADED:
            return f"{self.check}: not graded ({self.message})"
        if self.status == NOT_WRITTEN:
            return f"{self.check}: not written yet ({self.message})"
        if self.status == "error" or self.worst_index is None:  # an exception, or an array of the wrong shape
            return f"{self.check}: {self.input + ': ' if self.input else ''}{self.message}"
        return (f"{self.check}: {self.input} is wrong at {tuple(self.worst_index)}: yours is {self.yours:.6g}, "
                f"it should be {self.expected:.6g} (relative error {self.max_rel_err:.2g})")


def run_check(check: Check | ValueCheck, exercise: str = "") -> list[Record]:
    """Run one check; a student's NotImplementedError or exception becomes a record, not a crash."""
    try:
        if isinstance(check, ValueCheck):
            return [_compare(exercise, check.name, name, yours, expected) for name, yours, expected in check.compute()]
        results = gradcheck(check.fn, check.inputs, names=check.names, max_elements=check.max_elements)
    except NotImplementedError as error:
        return [Record(exercise, check.name, "", NOT_WRITTEN, message=str(error) or "NotImplementedError")]
    except BackwardContractError as error:  # wrote into its gradient: wrong even where the numbers come out right
        return [Record(exercise, check.name, "", "fail", message=str(error))]
    except Exception as error:  # a student's code can fail in any way: report it, grade the rest
        return [Record(exercise, check.name, "", "error", message=f"{type(error).__name__}: {error}")]
    return [Record(exercise, check.name, r.name, "pass" if r.passed else "fail", r.max_abs_err, r.max_rel_err,
                   list(r.worst_index), r.analytic, r.numeric) for r in results]


def _compare(exercise: str, check: str, name: str, yours, expected, rtol=1e-8, atol=1e-10) -> Record:
    """A value check's verdict: ``yours`` against ``expected``, elementwise."""
    expected = np.asarray(backend.to_host(expected), dtype=np.float64)
    if yours is None or tuple(yours.shape) != expected.shape:
        shape = None if yours is None else tuple(yours.shape)
        return Record(exercise, check, name, "fail", message=f"got shape {shape}, expected {expected.shape}")
    yours = np.asarray(backend.to_host(yours), dtype=np.float64)
    if yours.size == 0:
        return Record(exercise, check, name, "pass", 0.0, 0.0)
    max_abs, max_rel, worst, passed = compare(yours.reshape(-1), expected.reshape(-1), atol, rtol)
    worst_index = [int(i) for i in np.unravel_index(worst, expected.shape)]
    return Record(exercise, check, name, "pass" if passed else "fail", max_abs, max_rel, worst_index,
                  float(yours.reshape(-1)[worst]), float(expected.reshape(-1)[worst]))


def grade_case(exercise: str, case, sent: dict) -> list[Record]:
    """The verdict on what a student's process sent for one case (exercise_cases.GradCase or ValueCase),
    against the reference computed here from the grader's own copy of the inputs."""
    if "status" in sent:  # the student's code raised: it can only fail this way, never pass
        status = str(sent["status"]) if str(sent["status"]) in (NOT_WRITTEN, "fail") else "error"
        return [Record(exercise, case.name, "", status, message=student_message(sent))]
    sent = {name: array for name, array in sent.items() if array.dtype.kind in "biuf"}  # numbers only
    if isinstance(case, ValueCase):
        return [_compare(exercise, case.name, name, yours, expected) for name, yours, expected in case.expected(sent)]
    handed_back = sent.get("g")
    if handed_back is None or not np.array_equal(handed_back, case.inputs["g"]):  # on CuPy, where no array is
        return [Record(exercise, case.name, "", "fail", message=str(BackwardContractError(  # read-only
            FUNCTIONS[exercise], "the gradient it received")) if handed_back is not None else "g was not sent back")]
    reference = case.reference()
    records = [_compare(exercise, case.name, "output", sent.get("output"), reference["output"], **FORWARD_TOLERANCE)]
    for name in case.wrt:
        records.append(_compare(exercise, case.name, name, sent.get(f"grad {name}"), reference[f"grad {name}"],
                                **GRADIENT_TOLERANCE))
    return records


def student_message(frame: dict) -> str:
    """The message a student's process sent, printable, at most MESSAGE_LIMIT characters."""
    return printable(str(frame.get("message", ""))[:2 * MESSAGE_LIMIT])[:MESSAGE_LIMIT]


def printable(text: str) -> str:
    """``text`` without terminal escape codes and control characters (but newlines and tabs): what a student's
    file prints or raises must not move the cursor, erase the table or reorder what the grader shows."""
    text = _ESCAPE.sub("", text)
    return "".join(c for c in text if c in "\n\t" or unicodedata.category(c) not in ("Cc", "Cf"))


def failed_checks(records: list[Record]) -> int:
    return len({(r.exercise, r.check) for r in records if not r.passed})


def to_json(records: list[tuple[str | None, Record]], seed: int | None = None) -> str:
    """One JSON object per (file, record), in a list; the file is left out where it is None, the seed of the
    inputs where it is None. A NaN or infinite number (a backward that returned NaN, say) is written as null:
    JSON has no NaN."""
    def finite(value):
        return None if isinstance(value, float) and not math.isfinite(value) else value
    return json.dumps([{**({"file": path} if path else {}), **{k: finite(v) for k, v in r.as_dict().items()},
                        **({"seed": seed} if seed is not None else {})} for path, r in records],
                      indent=2, allow_nan=False)


def to_gradescope(files: list[tuple[str, list[Record]]], hints: dict[str, str] | None = None,
                  seed: int | None = None, message: str = "") -> str:
    """Gradescope's results.json: one test per file and check, named "FILE: CHECK" (just the check for
    minibn's own ops), worth 1 point when every input passes, with what went wrong, and the exercise's first
    hint, as its output. Two files never share a test, so no student's result hides another's. ``message``
    (why nothing was graded, say) leads the results' output."""
    tests = {}
    for file, records in files:
        for r in records:
            name = f"{file}: {r.check}" if file else r.check
            test = tests.setdefault(name, {"name": name, "score": 1, "max_score": 1, "status": "passed",
                                           "output": "", "exercise": r.exercise})
            if not r.passed:
                test.update(score=0, status="failed")
                test["output"] += r.sentence() + "\n"
    for test in tests.values():
        hint = (hints or {}).get(test.pop("exercise")) if test["status"] == "failed" else None
        test["output"] = (test["output"] + (f"hint: {hint}" if hint else "")).strip() or "passed"
    results = {"score": sum(t["score"] for t in tests.values()), "tests": list(tests.values())}
    if seed is not None or message:
        results["output"] = "\n".join(line for line in (message, seed is not None and f"inputs drawn with --seed {seed}")
                                      if line)
    return json.dumps(results, indent=2)
