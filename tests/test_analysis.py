"""`minibn sweep`, `minibn analyze` and `minibn plot` on fake data."""
import csv

import numpy as np
import pytest
from click.testing import CliRunner

from minibn.analysis import fraction_below, stage_of
from minibn.cli import main
from tests.conftest import BACKEND
from tests.fake_cifar import make_fake_cifar


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    data = root / "data"
    make_fake_cifar(data)
    out = root / "runs"
    result = CliRunner().invoke(main, ["sweep", "--backend", BACKEND, "--depths", "8,14", "--modes", "bn,output",
                                       "--epochs", "1", "--batch-size", "100", "--data-dir", str(data),
                                       "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out


def test_sweep_writes_table_csv_and_figure(sweep_dir):
    rows = list(csv.DictReader(open(sweep_dir / "results.csv")))
    assert sorted((r["depth"], r["train"]) for r in rows) == [("14", "bn"), ("14", "output"), ("8", "bn"),
                                                              ("8", "output")]
    table = (sweep_dir / "results.md").read_text()
    assert "| 14 | bn | 1 | 1 | 200 |" in table and "about 48" in table  # the paper's ResNet-14 BN-only
    assert (sweep_dir / "accuracy_vs_depth.png").stat().st_size > 10_000


def test_sweep_skips_finished_runs(sweep_dir):
    before = (sweep_dir / "resnet8-bn-seed0" / "metrics.jsonl").read_text()
    result = CliRunner().invoke(main, ["sweep", "--backend", BACKEND, "--depths", "8", "--modes", "bn",
                                       "--epochs", "1", "--batch-size", "100", "--data", "sample",
                                       "--out", str(sweep_dir)])
    assert result.exit_code == 0 and (sweep_dir / "resnet8-bn-seed0" / "metrics.jsonl").read_text() == before


def test_analyze_reports_gamma_per_stage(sweep_dir, tmp_path):
    figure = tmp_path / "gamma.png"
    result = CliRunner().invoke(main, ["analyze", str(sweep_dir / "resnet14-bn-seed0" / "checkpoint.npz"),
                                       "--out", str(figure)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    for stage in ("stem", "stage 1", "stage 3", "all"):
        assert stage in result.output
    assert figure.stat().st_size > 10_000


def test_plot_draws_curves_and_rejects_non_runs(sweep_dir, tmp_path):
    out = tmp_path / "curves.png"
    result = CliRunner().invoke(main, ["plot", str(sweep_dir / "resnet8-bn-seed0"), str(sweep_dir / "resnet8-output-seed0"),
                                       "--out", str(out)])
    assert result.exit_code == 0 and out.stat().st_size > 10_000
    result = CliRunner().invoke(main, ["plot", str(tmp_path)])
    assert result.exit_code == 1 and "has no metrics.jsonl" in result.output


def test_sweep_option_errors():
    result = CliRunner().invoke(main, ["sweep", "--depths", "8,21"])
    assert result.exit_code == 2 and "6n+2" in result.output
    result = CliRunner().invoke(main, ["sweep", "--modes", "bn,gamma"])
    assert result.exit_code == 2 and "unknown mode" in result.output


def test_stage_names_and_fractions():
    assert stage_of("bn1") == "stem" and stage_of("layer2.0.bn1") == "stage 2"
    assert stage_of("layer3.0.shortcut.1") == "stage 3 shortcut"
    assert fraction_below(np.array([0.0, 0.02, -0.07, 0.5]), (0.01, 0.05, 0.1)) == {0.01: 0.25, 0.05: 0.5, 0.1: 0.75}
