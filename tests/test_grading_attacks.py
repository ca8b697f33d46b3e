"""Grades come from the instructor's reference, decided in the grader: a submission that computes nothing fails,
and no file, hostile or merely odd, costs another student a grade (issue 20)."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from minibn import submission
from minibn.cli import main
from minibn.submission import _load_frame
from tests.conftest import BACKEND

ROOT = Path(__file__).resolve().parents[1]
STUBS = ROOT / "lessons" / "exercises"


def grade(path, *options):
    return CliRunner().invoke(main, ["gradcheck", str(path), "--backend", BACKEND, *options])


def solution_text(name: str) -> str:
    """A reference solution that runs from anywhere (it finds its stub by an absolute path)."""
    return (ROOT / "tests" / "exercise_solutions" / f"{name}.py").read_text().replace(
        "Path(__file__).parent", repr(str(ROOT / "tests" / "exercise_solutions")))


def relu_with_backward(body: str, forward: str = "array_module(x).maximum(x, 0)") -> str:
    return (STUBS / "ex_relu.py").read_text().replace("array_module(x).maximum(x, 0)", forward).replace(
        '        raise NotImplementedError("write ReLU.backward")', body)


# A Function whose forward and backward both return zeros of the right shapes: it passed 7 of 7 checks when
# the gradient was compared with central differences of the student's own forward.
ZEROS = '''
import numpy as np
from minibn.tensor import Function
EXERCISE = "{exercise}"


class {function}(Function):
    @staticmethod
    def forward(ctx, *arrays, stride=1, padding=0, labels=None):
        ctx.shapes = [a.shape for a in arrays]
        x = arrays[0]
        return np.zeros({shape})

    @staticmethod
    def backward(ctx, g):
        grads = tuple(np.zeros(shape) for shape in ctx.shapes)
        return grads if len(grads) > 1 else grads[0]
'''
ZERO_SUBMISSIONS = {
    "relu": ("ReLU", "x.shape"), "cross_entropy": ("CrossEntropy", "()"),
    "linear": ("Linear", "(x.shape[0], arrays[1].shape[0])"),
    "conv2d": ("Conv2d", "(x.shape[0], arrays[1].shape[0], (x.shape[2] + 2 * padding - arrays[1].shape[2]) // stride + 1,"
                         " (x.shape[3] + 2 * padding - arrays[1].shape[3]) // stride + 1)"),
    "batch_norm": ("BatchNorm", "x.shape"),
}
DO_NOTHING = {
    **{f"zeros_{name}": ZEROS.format(exercise=name, function=function, shape=shape)
       for name, (function, shape) in ZERO_SUBMISSIONS.items()},
    "relu_identity": relu_with_backward("        return g", forward="x * 1.0"),
    # the engine hands backward a read-only view whose base is writeable: move x where `g` is right
    "relu_setflags": relu_with_backward("        x.setflags(write=True)\n        x[...] = abs(x) + 1\n"
                                        "        return g.copy()"),
}


@pytest.mark.parametrize("name", sorted(DO_NOTHING))
def test_a_submission_that_computes_nothing_fails(tmp_path, name):
    path = tmp_path / f"{name}.py"
    path.write_text(DO_NOTHING[name])
    result = grade(path, "--format", "json")
    records = json.loads(result.stdout)
    assert result.exit_code == 1 and records and not all(r["passed"] for r in records), result.output
    assert {r["status"] for r in records} <= {"pass", "fail"}  # wrong numbers, not a crash
    if name.startswith("zeros"):
        assert not any(r["passed"] for r in records if r["input"] == "output")


def test_do_nothing_submissions_fail_in_a_folder_too_beside_one_that_passes(tmp_path):
    for name, text in [*DO_NOTHING.items(), ("right", solution_text("ex_relu"))]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "submission.py").write_text(text)
    out = tmp_path / "results.json"
    assert grade(tmp_path, "--format", "gradescope", "--output", str(out)).exit_code == 1
    results = json.loads(out.read_text())
    passed = {t["name"].split("/")[0] for t in results["tests"] if t["status"] == "passed"}
    assert passed == {"right"} and results["score"] == 1


def test_seed_is_drawn_shown_and_repeatable(tmp_path):
    wrong = tmp_path / "ex_linear.py"
    wrong.write_text((STUBS / "ex_linear.py").read_text().replace(
        '        raise NotImplementedError("write Linear.backward")',
        "        return g @ weight, 2 * g.T @ x, g.sum(axis=0)"))

    def run(*seed):
        result = grade(wrong, "--format", "json", *seed)
        records = json.loads(result.stdout)
        return records[0]["seed"], [(r["input"], r["expected"]) for r in records]
    seed, records = run()
    assert run("--seed", str(seed)) == (seed, records)                   # repeated
    assert run("--seed", str(seed + 1))[1] != records                     # other inputs
    table = grade(wrong).output                                           # drawn anew, and shown
    assert "inputs drawn with --seed " in table and f"--seed {seed} " not in table
    result = grade(wrong, "--seed", "-1")
    assert result.exit_code == 2 and "Traceback" not in result.output and "--seed" in result.output


def test_the_reference_solutions_pass_as_a_folder_and_the_stubs_helper_is_skipped():
    """tests/exercise_solutions/stubs.py mentions EXERCISE in its text; it was graded as a failed exercise."""
    folder = ROOT / "tests" / "exercise_solutions"
    result = grade(folder)
    assert result.exit_code == 0 and "FAIL" not in result.output and "ERROR" not in result.output, result.output
    lines = result.output.splitlines()
    for solution in folder.glob("ex_*.py"):
        assert any(line.startswith("gradcheck on ") and line.split(": ")[1] == str(solution) for line in lines)
    assert f"skipped {folder / 'stubs.py'}: does not assign EXERCISE at its top level" in result.output


ATTACKER = '''"""Attacks whatever the grader hands it or keeps nearby, then answers correctly."""
import os
import sys
from pathlib import Path

EXERCISE = "linear"
HERE = Path(__file__).resolve().parent


def sparse(path, size=40 * 2**30):
    with open(path, "wb") as f:
        f.truncate(size)


for argument in sys.argv[1:]:  # any path it was given
    if os.path.exists(argument):
        sparse(argument)
sparse("results.jsonl")  # its working folder
os.mkdir("results.json")
os.makedirs("locked/inside")
sparse("locked/inside/huge")
os.chmod("locked", 0)
for other in HERE.parent.glob("*/ex_*.py"):  # the other students' files, read by the grader already
    if other.parent != HERE:
        sparse(other)
for fd in range(3, 64):  # garbage on every channel it can find, one of them the grader's
    try:
        os.write(fd, b"\\xff" * 64 + b'{"passed": true, "score": 100}')
    except OSError:
        pass
'''
HELPER = '''"""Helpers for my exercise files: each one sets EXERCISE, this one does not."""


def relu_backward(g, x):
    return g * (x > 0)
'''


def make_class_folder(root: Path) -> Path:
    """The issue's class: a correct file, an attacker, a correct file importing its own helper (whose text
    mentions EXERCISE), a lowercase `exercise =`, a file that does not parse, and a 40 GB sparse stray file."""
    folders = {"aaa_mallory": {"ex_linear.py": ATTACKER + solution_text("ex_linear").split('"""', 2)[2]},
               "alice": {"ex_relu.py": solution_text("ex_relu")},
               "bob": {"ex_relu.py": relu_with_backward("        return helpers.relu_backward(g, x)").replace(
                   "EXERCISE = ", "import helpers\n\nEXERCISE = "), "helpers.py": HELPER},
               "carol": {"ex_relu.py": solution_text("ex_relu").replace("EXERCISE = stub.EXERCISE",
                                                                        'exercise = "relu"')},
               "dave": {"ex_relu.py": 'EXERCISE = "relu"\ndef oops(:\n'}}
    for student, files in folders.items():
        (root / student).mkdir(parents=True)
        for name, text in files.items():
            (root / student / name).write_text(text)
    (root / "stray").mkdir()
    with open(root / "stray" / "big.py", "wb") as f:
        f.truncate(40 * 2**30)  # sparse: no disk used
    return root


def test_a_class_folder_with_an_attacker_a_helper_and_a_40_gb_stray_file(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # where the grader makes the children's folders
    (tmp_path / "tmp").mkdir()
    for output_format in ("json", "gradescope"):
        class_folder = make_class_folder(tmp_path / output_format)
        out = tmp_path / f"{output_format}.json"
        result = grade(class_folder, "--format", output_format, "--output", str(out), "--timeout", "30")
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
        assert "helpers.py: does not assign EXERCISE" in result.stderr
        assert "carol/ex_relu.py: assigns exercise, not EXERCISE" in result.stderr
        if output_format == "json":
            rows = {}
            for r in json.loads(out.read_text()):
                rows.setdefault(str(Path(r["file"]).relative_to(class_folder)), []).append(r)
            verdict = {file: {r["status"] for r in records} for file, records in rows.items()}
        else:
            rows = {}
            for t in json.loads(out.read_text())["tests"]:
                rows.setdefault(t["name"].split(": ")[0], []).append(t)
            verdict = {file: {"pass" if t["status"] == "passed" else "error" if ": the file" in t["name"] else "fail"
                              for t in tests} for file, tests in rows.items()}
        assert sorted(verdict) == ["aaa_mallory/ex_linear.py", "alice/ex_relu.py", "bob/ex_relu.py",
                                   "dave/ex_relu.py", "stray/big.py"]
        assert verdict["alice/ex_relu.py"] == verdict["bob/ex_relu.py"] == {"pass"}
        assert "pass" not in verdict["aaa_mallory/ex_linear.py"]
        assert verdict["dave/ex_relu.py"] == verdict["stray/big.py"] == {"error"}
        text = out.read_text()
        assert "does not parse" in text and "42,949,672,960 bytes, over the" in text
        assert os.path.getsize(class_folder / "alice" / "ex_relu.py") == 40 * 2**30  # graded as handed in
    assert list((tmp_path / "tmp").iterdir()) == []  # every child's folder removed, the locked one too
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["gradescope.json", "json.json"]  # no temporary


def test_more_results_than_the_limit_is_that_files_error(tmp_path, monkeypatch):
    monkeypatch.setattr(submission, "RESULTS_LIMIT", 500)
    (tmp_path / "ex_relu.py").write_text(solution_text("ex_relu"))
    records = json.loads(grade(tmp_path / "ex_relu.py", "--format", "json").stdout)
    assert [r["status"] for r in records] == ["error"] and "sent more than 500 bytes" in records[0]["message"]


def npz(**arrays) -> bytes:
    import io
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def test_a_frame_is_read_only_as_plain_arrays_of_the_size_it_declares():
    import io
    import zipfile
    assert _load_frame(npz(case=np.array(0), output=np.ones(3)))["output"].tolist() == [1, 1, 1]
    assert _load_frame(npz(output=np.array([{"a": 1}], dtype=object))) is None  # a pickle: never loaded
    assert _load_frame(b"\xff" * 100) is None
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:  # 16 MB of zeros in a few kB
        with archive.open("output.npy", "w") as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": (2**21,)})
            for _ in range(16):
                f.write(bytes(2**20))
    assert len(bomb.getvalue()) < 2**17 and _load_frame(bomb.getvalue()) is None
    liar = io.BytesIO()  # a header that claims a terabyte, and 8 bytes of data
    np.lib.format.write_array_header_1_0(liar, {"descr": "<f8", "fortran_order": False, "shape": (2**37,)})
    liar.write(bytes(8))
    archive_bytes = io.BytesIO()
    with zipfile.ZipFile(archive_bytes, "w") as archive:
        archive.writestr("output.npy", liar.getvalue())
    assert _load_frame(archive_bytes.getvalue()) is None


def test_a_students_escape_codes_never_reach_the_terminal(tmp_path):
    folder = tmp_path / "\x1b[2Jevil"
    folder.mkdir()
    (folder / "ex_relu.py").write_text(relu_with_backward(
        "        print('\\x1b[2J\\x1b[H\\x1b]0;owned\\x07\\u202e')\n"
        "        raise ValueError('\\x1b[31mred\\x1b[0m \\x9b2J')"))
    (folder / "notes.py").write_text("x = 1\n")
    for options in ([], ["--format", "json"], ["--format", "gradescope"]):
        result = grade(tmp_path, *options)
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert not any(c in result.output for c in "\x1b\x07\x9b\u202e"), repr(result.output)
        assert "ValueError" in result.output and "red" in result.output


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_writes_what_was_graded_marks_the_rest_and_exits_130(tmp_path, stop):
    started = tmp_path / "started"
    files = {"a": solution_text("ex_relu"),
             "b": f'EXERCISE = "relu"\nopen({str(started)!r}, "w").close()\nwhile True:\n    pass\n',
             "c": solution_text("ex_relu")}
    for student, text in files.items():
        (tmp_path / "class" / student).mkdir(parents=True)
        (tmp_path / "class" / student / "ex_relu.py").write_text(text)
    out = tmp_path / "results.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    grader = subprocess.Popen([sys.executable, "-m", "minibn", "gradcheck", str(tmp_path / "class"), "--backend",
                               BACKEND, "--format", "json", "--output", str(out)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    grader.send_signal(stop)
    stdout, stderr = grader.communicate(timeout=60)
    assert grader.returncode == 130 and "Traceback" not in stderr, stderr
    assert "Interrupted: 1 of 3 files graded" in stderr
    verdict = {}
    for r in json.loads(out.read_text()):
        verdict.setdefault(Path(r["file"]).parent.name, set()).add(r["status"])
    assert verdict == {"a": {"pass"}, "b": {"not graded"}, "c": {"not graded"}}


def test_odd_arrays_on_the_channel_are_that_files_verdict_never_the_graders_crash():
    from minibn import backend
    from minibn.exercise_cases import CASES
    from minibn.submission import _verdicts
    backend.use_backend("numpy")  # as the grader does: the reference runs on the host
    cases = {"relu": CASES["relu"](np.random.default_rng(0))}
    x, g = cases["relu"][0].inputs["x"], cases["relu"][0].inputs["g"]
    frames = [{"exercise": np.array("relu")},
              {"case": np.array(0), "output": np.array("PASS"), "g": g.copy(), "grad x": x.astype(np.int8)},
              {"case": np.array(0), "output": np.maximum(x, 0)},  # a second word on the same case: ignored
              {"done": np.array(True)}]
    records, exercise, done, problem = _verdicts(frames, cases, "")
    assert exercise == "relu" and done and problem is None
    assert [(r.input, r.status) for r in records] == [("output", "fail"), ("x", "fail")]
    frames[1]["g"] = g + 1  # not the gradient it was handed: a write into it, as far as the grader knows
    assert [(r.status, r.message[:29]) for r in _verdicts(frames, cases, "")[0]] == [
        ("fail", "ReLU.backward wrote into the ")]
    assert _verdicts([{"exercise": np.array("relu")}, None], cases, "")[3].startswith("sent something")


def test_links_and_unlistable_folders_are_listed_as_skipped_not_followed(tmp_path):
    (tmp_path / "class" / "alice").mkdir(parents=True)
    (tmp_path / "class" / "alice" / "ex_relu.py").write_text(solution_text("ex_relu"))
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "ex_relu.py").write_text(DO_NOTHING["relu_identity"])
    (tmp_path / "class" / "linked").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "class" / "link.py").symlink_to(tmp_path / "elsewhere" / "ex_relu.py")
    (tmp_path / "class" / "locked").mkdir()
    (tmp_path / "class" / "locked").chmod(0)
    try:
        result = grade(tmp_path / "class", "--format", "json")
    finally:
        (tmp_path / "class" / "locked").chmod(0o700)
    assert result.exit_code == 0 and [Path(r["file"]).parent.name for r in json.loads(result.stdout)] == ["alice"] * 2
    assert "linked: a symbolic link to a folder: not followed" in result.stderr
    assert "link.py: a symbolic link: not followed" in result.stderr
    assert os.geteuid() == 0 or "locked: cannot be listed" in result.stderr  # root lists anything


def test_an_answer_written_for_one_seed_fails_on_another(tmp_path):
    from minibn import backend
    from minibn.exercise_cases import CASES
    backend.use_backend("numpy")
    answer = CASES["relu"](np.random.default_rng(5))[0].reference()["grad x"]
    path = tmp_path / "ex_relu.py"
    path.write_text(relu_with_backward(f"        import numpy\n        return numpy.array({answer.tolist()!r})"))
    assert grade(path, "--seed", "5").exit_code == 0
    assert grade(path, "--seed", "6").exit_code == 1
