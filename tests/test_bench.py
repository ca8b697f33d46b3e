"""`minibn bench` runs and reports (tiny settings: a test never times anything that matters)."""
from click.testing import CliRunner

from minibn.cli import main


def test_bench_reports_step_time_and_profile():
    result = CliRunner().invoke(main, ["bench", "--backend", "numpy", "--depth", "8", "--batch-size", "8",
                                       "--eval-batch-size", "8", "--steps", "1", "--repeats", "2", "--warmup", "1",
                                       "--profile"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "ms/step" in result.output and "Conv2d" in result.output and "backward" in result.output


def test_bench_compare_torch_without_torch_is_one_line(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "torch", None)
    result = CliRunner().invoke(main, ["bench", "--backend", "numpy", "--depth", "8", "--batch-size", "4",
                                       "--eval-batch-size", "4", "--steps", "1", "--repeats", "1",
                                       "--compare", "torch"])
    assert result.exit_code == 1 and "needs PyTorch" in result.output
