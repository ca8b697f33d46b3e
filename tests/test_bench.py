"""`minibn bench` runs and reports (tiny settings: a test never times anything that matters)."""
import json

from click.testing import CliRunner

from minibn.cli import main
from tests.conftest import BACKEND, STANDIN


def test_bench_reports_step_time_math_and_profile(tmp_path):
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(main, ["bench", "--backend", BACKEND, "--depth", "8", "--batch-size", "8",
                                       "--eval-batch-size", "8", "--steps", "1", "--repeats", "2", "--warmup", "1",
                                       "--profile", "--json", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "ms/step" in result.output and "Conv" in result.output and "backward" in result.output
    assert "where a minibn step's time goes" in result.output and "convolutions" in result.output
    assert "math: FP32" in result.output
    record = json.loads(out.read_text())
    assert record["math"] == "fp32" and record["results"][0]["train_ms"] > 0 and record["profile"]
    if STANDIN:  # CuPy's stand-in counts the device operations
        assert "device operations (counted by the CuPy stand-in)" in result.output
        assert record["device_ops"]["train"]["total"] > record["device_ops"]["eval"]["total"] > 0


def test_tf32_on_a_cpu_is_a_usage_error():
    result = CliRunner().invoke(main, ["bench", "--backend", "numpy", "--math", "tf32"])
    assert result.exit_code == 2 and "needs a GPU" in result.output


def test_bench_compare_torch_without_torch_is_one_line(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "torch", None)
    result = CliRunner().invoke(main, ["bench", "--backend", BACKEND, "--depth", "8", "--batch-size", "4",
                                       "--eval-batch-size", "4", "--steps", "1", "--repeats", "1",
                                       "--compare", "torch"])
    assert result.exit_code == 1 and "needs PyTorch" in result.output
