"""Every lesson runs at its smallest settings (--smoke) and saves its figures."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import BACKEND

LESSONS = sorted((Path(__file__).resolve().parents[1] / "lessons").glob("[0-9][0-9]_*.py"))


def test_there_are_eleven_lessons():
    assert len(LESSONS) == 11


@pytest.mark.parametrize("lesson", LESSONS, ids=[p.stem for p in LESSONS])
def test_lesson_runs_and_saves_a_figure(lesson, tmp_path):
    out = tmp_path / lesson.stem
    env = {**os.environ, "MINIBN_BACKEND": BACKEND, "COLUMNS": "120"}
    result = subprocess.run([sys.executable, str(lesson), "--smoke", "--out", str(out)], capture_output=True,
                            text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert list(out.glob("*.png")), "a lesson saves at least one figure"
