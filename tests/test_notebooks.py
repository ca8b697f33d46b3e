"""Every lesson is also a Jupyter notebook: paired with its script, committed without outputs, and it runs.

jupytext and nbclient come with the dev extra (pip install ".[dev]").
"""
import json
import os
import sys
from pathlib import Path

import pytest

jupytext = pytest.importorskip("jupytext")

LESSONS = Path(__file__).resolve().parents[1] / "lessons"
SCRIPTS = sorted(LESSONS.glob("[0-9][0-9]_*.py"))


def cells(notebook) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source) for cell in notebook.cells]


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_the_notebook_has_the_scripts_cells(script):
    notebook = script.with_suffix(".ipynb")
    assert notebook.exists(), f"no {notebook.name}: run  jupytext --sync {notebook.relative_to(LESSONS.parent)}"
    assert cells(jupytext.read(script)) == cells(jupytext.read(notebook)), \
        f"{script.name} and {notebook.name} drifted apart: run  jupytext --sync lessons/[0-9]*.ipynb"
    assert json.loads(notebook.read_text())["metadata"]["jupytext"]["formats"] == "ipynb,py:percent"


def test_notebooks_are_committed_without_outputs():
    for notebook in LESSONS.glob("[0-9][0-9]_*.ipynb"):
        for cell in json.loads(notebook.read_text())["cells"]:
            assert not cell.get("outputs") and cell.get("execution_count") is None, f"{notebook.name} has outputs"


def test_a_lesson_notebook_runs_top_to_bottom_in_a_kernel(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("MINIBN_LESSON_SMOKE", "1")  # the notebook's --smoke and --out
    monkeypatch.setenv("MINIBN_LESSON_OUT", str(tmp_path))
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    notebook = nbformat.read(LESSONS / "01_autograd_from_scratch.ipynb", as_version=4)
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(LESSONS)}}).execute()
    outputs = [output for cell in notebook.cells for output in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any(o.output_type == "display_data" and "image/png" in o.data for o in outputs), "the figure is shown"
    assert (tmp_path / "01_autograd" / "derivative.png").exists()
