"""Exercise grading works both ways (every stub fails, every reference solution passes), its hints
never give the answer away, and its JSON and Gradescope output are what autograders read."""
import json
import re
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from minibn.cli import main
from minibn.exercises import EXERCISES
from tests.conftest import BACKEND

ROOT = Path(__file__).resolve().parents[1]
STUBS = sorted((ROOT / "lessons" / "exercises").glob("ex_*.py"))
SOLUTIONS = sorted((ROOT / "tests" / "exercise_solutions").glob("ex_*.py"))
NAMES = {"ex_relu": "relu", "ex_cross_entropy": "cross_entropy", "ex_linear": "linear", "ex_conv": "conv2d",
         "ex_batchnorm": "batch_norm", "ex_im2col": "im2col", "ex_sgd": "sgd"}

# What the answer looks like: no hint may contain any of these (compared without spaces, in lower case),
# nor any line of the reference solution's code.
ANSWERS = {
    "relu": ["x>0", "g*("],
    "cross_entropy": ["exp(log_probs)", "-=1", "-onehot", "softmax-", "(g/n)", "g/n"],
    "linear": ["g@w", "g.t@x", "g@weight", "sum(axis=0)", "x.t"],
    "conv2d": ["g_mat@", "cols.t", "w_mat.t", "+=cols", "@g_mat", "w^t", "cols^t"],
    "batch_norm": ["m*g", "dbeta-", "xhat*dgamma", "gamma*inv_std/", "inv_std/m", "/m*("],
    "im2col": ["::stride", "i:i+", "stride*ho", "x_cn["],
    "sgd": ["momentum*buf", "buf*=", "-=lr", "lr*buf", "weight_decay*param", "weight_decay*p", "d.copy()"],
}


def grade(path, *options):
    return CliRunner().invoke(main, ["gradcheck", str(path), "--backend", BACKEND, *options])


def squeezed(text: str) -> str:
    return re.sub(r"\s+", "", text).lower()


def test_seven_exercises_each_with_a_stub_and_a_solution():
    assert [p.name for p in STUBS] == [p.name for p in SOLUTIONS] and len(STUBS) == 7
    assert sorted(NAMES[p.stem] for p in STUBS) == sorted(EXERCISES)


@pytest.mark.parametrize("stub", STUBS, ids=[p.stem for p in STUBS])
def test_a_stub_is_not_written_yet_and_gets_the_first_hint_only(stub):
    result = grade(stub, "--hint", "3")
    assert result.exit_code == 1 and "FAILED" in result.output
    assert "not written yet" in result.output and "hint 1 of 3" in result.output and "hint 2" not in result.output


# Every reference solution passes: tests/test_grading_attacks.py grades their folder, in one run.


@pytest.mark.parametrize("name", sorted(EXERCISES))
def test_no_hint_level_gives_the_answer(name):
    solution = next(p for p in SOLUTIONS if NAMES[p.stem] == name)
    code = [squeezed(line) for line in solution.read_text().split('"""')[-1].splitlines()
            if re.search(r"[=@*+/]", line) and not line.lstrip().startswith(("#", "from", "import", "sys.path"))]
    forbidden = ANSWERS[name] + [line for line in code if len(line) > 8]
    for level, hint in enumerate(EXERCISES[name].hints, 1):
        assert len(hint) > 80, f"hint {level} of {name} says too little"
        leaked = [fragment for fragment in forbidden if fragment in squeezed(hint)]
        assert not leaked, f"hint {level} of {name} gives away {leaked}"


def test_a_wrong_backward_shows_where_and_all_hint_levels(tmp_path):
    wrong = tmp_path / "ex_linear.py"
    wrong.write_text((ROOT / "lessons" / "exercises" / "ex_linear.py").read_text().replace(
        '        raise NotImplementedError("write Linear.backward")',
        "        return g @ weight, (g.T @ x).T.T * 2, g.sum(axis=0)"))
    result = grade(wrong, "--hint", "3")
    assert result.exit_code == 1
    assert "linear: weight is wrong at (" in result.output and "it should be" in result.output
    for level in (1, 2, 3):
        assert f"hint {level} of 3" in result.output
    assert "hint 2 of 3" not in grade(wrong).output and "--hint 2" in grade(wrong).output


def test_json_records_for_a_stub_and_a_solution(tmp_path):
    for path, passed in [(ROOT / "lessons" / "exercises" / "ex_conv.py", False),
                         (ROOT / "tests" / "exercise_solutions" / "ex_conv.py", True)]:
        out = tmp_path / "records.json"
        result = grade(path, "--format", "json", "--output", str(out))
        assert result.exit_code == (0 if passed else 1)
        records = json.loads(out.read_text())
        assert len(records) == (9 if passed else 3)  # output, x and weight of three checks; a stub fails each once
        for record in records:
            assert {"exercise", "check", "input", "passed", "max_abs_err", "max_rel_err", "worst_index"} <= set(record)
            assert record["exercise"] == "conv2d" and record["passed"] is passed
            assert record["status"] == ("pass" if passed else "not written yet")


def test_json_goes_to_standard_output_alone():
    result = grade(ROOT / "tests" / "exercise_solutions" / "ex_relu.py", "--format", "json")
    records = json.loads(result.stdout)
    assert result.exit_code == 0 and records[0]["passed"] and records[0]["max_rel_err"] < 1e-6


def test_gradescope_results(tmp_path):
    out = tmp_path / "results.json"
    assert grade(ROOT / "tests" / "exercise_solutions" / "ex_sgd.py", "--format", "gradescope",
                 "--output", str(out)).exit_code == 0
    results = json.loads(out.read_text())
    assert results["score"] == 2 and [t["score"] for t in results["tests"]] == [1, 1]
    assert all(t["max_score"] == 1 and t["status"] == "passed" for t in results["tests"])
    assert grade(ROOT / "lessons" / "exercises" / "ex_sgd.py", "--format", "gradescope",
                 "--output", str(out)).exit_code == 1
    results = json.loads(out.read_text())
    assert results["score"] == 0 and all(t["status"] == "failed" for t in results["tests"])
    assert "not written yet" in results["tests"][0]["output"] and "hint:" in results["tests"][0]["output"]


def test_a_folder_of_submissions(tmp_path):
    for student, source in [("alice", ROOT / "tests" / "exercise_solutions" / "ex_relu.py"),
                            ("bob", ROOT / "lessons" / "exercises" / "ex_relu.py")]:
        (tmp_path / student).mkdir()
        (tmp_path / student / "ex_relu.py").write_text(source.read_text().replace(
            "Path(__file__).parent", repr(str(ROOT / "tests" / "exercise_solutions"))))
    (tmp_path / "alice" / "notes.py").write_text("x = 1\n")  # not an exercise: skipped
    result = grade(tmp_path, "--format", "json")
    records = json.loads(result.stdout)
    assert result.exit_code == 1
    assert {(Path(r["file"]).parent.name, r["passed"]) for r in records} == {("alice", True), ("bob", False)}


def test_col2im_that_overwrites_instead_of_adding_fails(tmp_path):
    solution = (ROOT / "tests" / "exercise_solutions" / "ex_conv.py").read_text()
    solution = solution.replace("Path(__file__).parent", repr(str(ROOT / "tests" / "exercise_solutions")))
    wrong_col2im = """
def col2im(cols, x_shape, stride, padding):  # overwrites where patches overlap: a classic bug
    c, kh, kw, n, ho, wo = cols.shape
    _, _, h, w = x_shape
    xp = array_module(cols)
    dx = xp.zeros((c, n, h + 2 * padding, w + 2 * padding))
    for i in range(kh):
        for j in range(kw):
            dx[:, :, i:i + stride * ho:stride, j:j + stride * wo:stride] = cols[:, i, j]
    return xp.ascontiguousarray(dx[:, :, padding:padding + h, padding:padding + w].transpose(1, 0, 2, 3))
"""
    wrong = tmp_path / "ex_conv_wrong.py"
    wrong.write_text(solution.replace("from minibn.conv import col2im  # noqa: E402",
                                      "from minibn.backend import array_module" + wrong_col2im))
    result = grade(wrong)
    assert result.exit_code == 1 and "FAIL at" in result.output and "x is wrong at" in result.output


def test_file_without_exercise_name_is_a_clear_error(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text("x = 1\n")
    result = grade(path)
    assert result.exit_code == 1 and "must set EXERCISE" in result.output


def test_an_array_of_the_wrong_shape_is_reported_not_a_crash(tmp_path):
    wrong = tmp_path / "ex_im2col.py"
    wrong.write_text('EXERCISE = "im2col"\nimport numpy as np\n\n\ndef im2col(x, kh, kw, stride, padding):\n'
                     '    return np.zeros((1, 2))\n')
    for options in ([], ["--format", "gradescope"]):
        result = grade(wrong, *options)
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert "got shape (1, 2), expected (3, 3, 3, 2, 5, 5)" in result.output


def solution_text(name: str) -> str:
    """A reference solution that runs from anywhere (it finds its stub by an absolute path)."""
    return (ROOT / "tests" / "exercise_solutions" / f"{name}.py").read_text().replace(
        "Path(__file__).parent", repr(str(ROOT / "tests" / "exercise_solutions")))


def test_a_batchnorm_backward_that_scales_g_in_place_fails(tmp_path):
    """``g *= gamma`` first makes dgamma and dbeta wrong by a factor gamma, and dx too; it passed when the
    finite differences used the same, scaled, array."""
    wrong = tmp_path / "ex_batchnorm.py"
    first_line = "        m = g.size // g.shape[1]\n"
    wrong.write_text(solution_text("ex_batchnorm").replace(
        first_line, first_line + "        g *= gamma.reshape(1, -1, 1, 1)\n"))
    result = grade(wrong)
    assert result.exit_code == 1 and "PASS" not in result.output
    assert "BatchNorm.backward wrote into" in result.output and "residual add" in result.output


def test_a_relu_backward_written_as_g_times_equals_fails(tmp_path):
    wrong = tmp_path / "ex_relu.py"
    wrong.write_text(solution_text("ex_relu").replace("        return g * (x > 0)",
                                                      "        g *= 2 * (x > 0)\n        return g"))
    result = grade(wrong, "--format", "json")
    (record,) = json.loads(result.stdout)
    assert result.exit_code == 1 and record["status"] == "fail" and "ReLU.backward wrote into" in record["message"]


@pytest.mark.parametrize("exit_call", ["sys.exit(0)", "os._exit(0)"])
def test_a_submission_that_exits_fails(tmp_path, exit_call):
    for where, text in [("at import", solution_text("ex_relu") + f"\nimport os\n{exit_call}\n"),
                        ("in backward", solution_text("ex_relu").replace(
                            "        return g * (x > 0)", f"        import os\n        {exit_call}"))]:
        path = tmp_path / "ex_relu.py"
        path.write_text(text)
        result = grade(path, "--format", "json")
        records = json.loads(result.stdout)
        assert result.exit_code == 1, where
        assert [r["status"] for r in records] == ["error"] and "exit" in records[0]["message"], where


def test_a_folder_with_a_loop_an_import_error_a_flood_and_a_good_file_grades_all_four(tmp_path):
    submissions = tmp_path / "submissions"
    files = {
        "loop": 'EXERCISE = "relu"\nwhile True:\n    pass\n',
        "import_error": 'EXERCISE = "relu"\nimport a_module_that_is_not_there\n',
        "flood": solution_text("ex_relu").replace(  # 20,000 lines of printing, on standard output and error
            "        return g * (x > 0)",
            "        for i in range(20_000):\n"
            "            print('{\"score\": 100}', i, file=(sys.stdout, sys.stderr)[i % 2])\n"
            "        return g * (x > 0)"),
        "good": solution_text("ex_relu"),
    }
    for student, text in files.items():
        (submissions / student).mkdir(parents=True)
        (submissions / student / "ex_relu.py").write_text(text)
    timeout = 5  # seconds: the loop takes all of it, twice; the others take about one on a busy machine
    start = time.perf_counter()
    result = grade(submissions, "--format", "json", "--timeout", str(timeout))  # JSON on standard output
    assert time.perf_counter() - start < timeout + 20
    records = json.loads(result.stdout)  # nothing the students printed is in it
    assert result.exit_code == 1
    verdict = {Path(r["file"]).parent.name: (r["status"], r["message"]) for r in records}
    assert set(verdict) == set(files)
    assert verdict["good"][0] == verdict["flood"][0] == "pass"
    assert verdict["loop"][0] == "error" and f"stopped after {timeout} s" in verdict["loop"][1]
    assert verdict["import_error"][0] == "error" and "a_module_that_is_not_there" in verdict["import_error"][1]

    out = tmp_path / "results.json"
    assert grade(submissions, "--format", "gradescope", "--output", str(out), "--timeout", str(timeout)).exit_code == 1
    tests = {t["name"]: t for t in json.loads(out.read_text())["tests"]}  # one test per file and check
    assert {name: t["status"] for name, t in tests.items()} == {
        "flood/ex_relu.py: relu": "passed", "good/ex_relu.py: relu": "passed",
        "import_error/ex_relu.py: the file": "failed", "loop/ex_relu.py: the file": "failed"}
    assert "stopped after" in tests["loop/ex_relu.py: the file"]["output"]
    assert "a_module" in tests["import_error/ex_relu.py: the file"]["output"]


def test_a_students_own_numpy_py_does_not_shadow_numpy(tmp_path):
    (tmp_path / "numpy.py").write_text("raise ImportError('the wrong numpy')\n")
    (tmp_path / "ex_relu.py").write_text(solution_text("ex_relu"))
    result = grade(tmp_path / "ex_relu.py")
    assert result.exit_code == 0, result.output


def test_an_unwritable_output_or_a_nan_timeout_is_a_one_line_error_before_grading(tmp_path):
    (tmp_path / "a_file").write_text("")
    for options in (["--format", "json", "--output", str(tmp_path / "a_file" / "results.json")],
                    ["--timeout", "nan"]):
        result = grade(SOLUTIONS[0], *options)
        assert result.exit_code == 2 and "Traceback" not in result.output and result.exception is not None
        assert "--output" in result.output or "--timeout" in result.output
    assert grade(SOLUTIONS[0], "--format", "json", "--output", str(tmp_path / "new" / "r.json")).exit_code == 0
    assert json.loads((tmp_path / "new" / "r.json").read_text())


def test_a_folder_or_a_broken_link_named_py_in_a_class_folder_is_no_traceback(tmp_path):
    (tmp_path / "notes.py").mkdir()
    (tmp_path / "gone.py").symlink_to(tmp_path / "nowhere")
    (tmp_path / "ex_relu.py").write_text(solution_text("ex_relu"))
    result = grade(tmp_path)
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    assert "all 1 checks passed" in result.output


def test_a_backward_that_returns_nan_gives_valid_json(tmp_path):
    (tmp_path / "ex_relu.py").write_text(solution_text("ex_relu").replace("return g * (x > 0)",
                                                                          "return g * float('nan')"))
    out = tmp_path / "results.json"
    assert grade(tmp_path / "ex_relu.py", "--format", "json", "--output", str(out)).exit_code == 1

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")
    records = json.loads(out.read_text(), parse_constant=refuse)  # strict JSON, as jq or JavaScript read it
    (x,) = [r for r in records if r["input"] == "x"]
    assert x["status"] == "fail" and x["yours"] is None and x["expected"] is not None
