"""Running checks and reporting them: one record per checked input, for a person, for JSON, for Gradescope.

A check is either a gradient check (checks.Check: a backward against central differences) or a
value check (checks.ValueCheck: an array against the one a reference computes). Both end as
Records with the same fields, so the table, the JSON and Gradescope's results.json read alike.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

import numpy as np

from minibn import backend
from minibn.checks import Check, ValueCheck
from minibn.gradcheck import compare, gradcheck
from minibn.tensor import BackwardContractError

NOT_WRITTEN = "not written yet"


@dataclass
class Record:
    """The verdict on one input of one check."""
    exercise: str            # "" for minibn's own checks
    check: str
    input: str
    status: str              # "pass", "fail", "not written yet" or "error"
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


def failed_checks(records: list[Record]) -> int:
    return len({(r.exercise, r.check) for r in records if not r.passed})


def to_json(records: list[tuple[str | None, Record]]) -> str:
    """One JSON object per (file, record), in a list; the file is left out where it is None. A NaN or
    infinite number (a backward that returned NaN, say) is written as null: JSON has no NaN."""
    def finite(value):
        return None if isinstance(value, float) and not math.isfinite(value) else value
    return json.dumps([{**({"file": path} if path else {}), **{k: finite(v) for k, v in r.as_dict().items()}}
                       for path, r in records], indent=2, allow_nan=False)


def to_gradescope(records: list[Record], hints: dict[str, str] | None = None) -> str:
    """Gradescope's results.json: one test per check (1 point when every input passes), with what
    went wrong, and the exercise's first hint, as its output."""
    tests = {}
    for r in records:
        name = f"{r.exercise}: {r.check}" if r.exercise else r.check
        test = tests.setdefault(name, {"name": name, "score": 1, "max_score": 1, "status": "passed", "output": ""})
        if not r.passed:
            test.update(score=0, status="failed")
            test["output"] += r.sentence() + "\n"
    for name, test in tests.items():
        hint = (hints or {}).get(name.split(":")[0]) if test["status"] == "failed" else None
        test["output"] = (test["output"] + (f"hint: {hint}" if hint else "")).strip() or "passed"
    return json.dumps({"score": sum(t["score"] for t in tests.values()), "tests": list(tests.values())}, indent=2)
