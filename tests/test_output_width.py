"""Output that logs, pipes and tests can read whatever the terminal width or the length of a path.

rich wraps at $COLUMNS (80 without it) wherever it writes. In a log that split `minibn train`'s epoch
line mid-number, and under pytest it split the words that tests look for (`--hint 2`, a long path).
"""
import io
import os
import re
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from rich.console import Console

import minibn.train
from minibn.cli import main
from minibn.data import load_sample
from tests.conftest import BACKEND

ROOT = Path(__file__).resolve().parents[1]
EPOCH_LINE = re.compile(r"^epoch +\d+/2  lr \S+  train loss \S+ acc \S+%  test loss \S+ acc \S+%  \S+s \(\d+ img/s\)$")
LONG = "a_folder_with_a_long_name_" * 6


def test_each_epoch_of_train_is_one_line_in_a_pipe(tmp_path):
    out = tmp_path / LONG / "run"
    env = {**os.environ, "COLUMNS": "40", "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    result = subprocess.run(
        [sys.executable, "-m", "minibn", "train", "--backend", BACKEND, "--data", "sample", "--depth", "8",
         "--width", "4", "--epochs", "2", "--batch-size", "50", "--subset", "100", "--test-subset", "50",
         "--out", str(out)], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert len([line for line in lines if EPOCH_LINE.match(line)]) == 2, result.stdout
    assert not [line for line in lines if line.startswith("epoch") and not EPOCH_LINE.match(line)]
    assert any(line.endswith(f"run folder {out}") for line in lines)  # the path, whole, on its line
    assert "" not in lines[:3]  # no blank lines where a progress bar would be in a terminal


def test_each_epoch_is_one_line_on_a_narrow_console_of_ones_own(tmp_path):
    """The lessons train with their own console: the epoch line does not wrap there either."""
    buffer = io.StringIO()
    config = minibn.train.TrainConfig(depth=8, width=4, epochs=2, batch_size=50, subset=100, test_subset=50)
    minibn.train.run(config, load_sample(), tmp_path / "run", console=Console(file=buffer, width=40))
    assert len([line for line in buffer.getvalue().splitlines() if EPOCH_LINE.match(line)]) == 2


def test_gradcheck_lines_are_whole_at_any_width(tmp_path):
    wrong = tmp_path / LONG / "ex_linear.py"
    wrong.parent.mkdir()
    wrong.write_text((ROOT / "lessons" / "exercises" / "ex_linear.py").read_text().replace(
        '        raise NotImplementedError("write Linear.backward")',
        "        return g @ weight, g.T @ x * 2, g.sum(0)"))
    for columns in ("40", "300"):
        result = CliRunner().invoke(main, ["gradcheck", str(wrong), "--backend", BACKEND], env={"COLUMNS": columns})
        lines = result.output.splitlines()
        assert result.exit_code == 1
        assert f"more: minibn gradcheck {wrong} --hint 2" in lines
        assert any(line.startswith("linear: weight is wrong at (") and line.endswith(")") for line in lines)
        assert any(line.endswith(f"{wrong}: linear layer backward") for line in lines)
