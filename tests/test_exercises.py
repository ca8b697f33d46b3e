"""Exercise grading works both ways: every stub fails, every reference solution passes."""
from pathlib import Path

import pytest
from click.testing import CliRunner

from minibn.cli import main
from tests.conftest import BACKEND

ROOT = Path(__file__).resolve().parents[1]
STUBS = sorted((ROOT / "lessons" / "exercises").glob("ex_*.py"))
SOLUTIONS = sorted((ROOT / "tests" / "exercise_solutions").glob("ex_*.py"))


def grade(path):
    return CliRunner().invoke(main, ["gradcheck", str(path), "--backend", BACKEND])


def test_every_stub_has_a_solution():
    assert [p.name for p in STUBS] == [p.name for p in SOLUTIONS] and len(STUBS) == 5


@pytest.mark.parametrize("stub", STUBS, ids=[p.stem for p in STUBS])
def test_stub_fails_with_a_hint(stub):
    result = grade(stub)
    assert result.exit_code == 1 and "FAILED" in result.output and "hint:" in result.output


@pytest.mark.parametrize("solution", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_solution_passes(solution):
    result = grade(solution)
    assert result.exit_code == 0, result.output
    assert "PASS" in result.output and "FAIL" not in result.output


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
    assert result.exit_code == 1 and "FAIL at" in result.output


def test_file_without_exercise_name_is_a_clear_error(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text("x = 1\n")
    result = grade(path)
    assert result.exit_code == 1 and "must set EXERCISE" in result.output
