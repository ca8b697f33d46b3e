"""`minibn bench` runs and reports (tiny settings: a test never times anything that matters)."""
import json

from click.testing import CliRunner

from minibn import blas_kernel
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
    if BACKEND == "numpy":  # the BLAS kernel that NumPy's matmuls ran, as threadpoolctl reports it
        kernel = blas_kernel.loaded_kernels()[0]
        assert f"BLAS (threadpoolctl): {kernel['internal_api']} {kernel['version']}" in result.output
        assert record["blas"].startswith(kernel["internal_api"]) and record["blas_warnings"] == []
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


def test_bench_says_when_a_variable_forces_another_blas_kernel(monkeypatch):
    """A variable such as OPENBLAS_CORETYPE=Haswell makes OpenBLAS run that kernel on any CPU. The tests
    never set OPENBLAS_CORETYPE itself: MKL_DEBUG_CPU_TYPE exercises the same check, and a stand-in for the
    probe of a fresh Python plays OpenBLAS picking a newer kernel without the variable."""
    monkeypatch.setenv("MKL_DEBUG_CPU_TYPE", "5")
    own = blas_kernel.loaded_kernels()
    line, warnings = blas_kernel.describe()  # asks a fresh Python without the variable: the same kernel here
    assert warnings == [f"MKL_DEBUG_CPU_TYPE=5 is set; without it this CPU gets the same kernel "
                        f"({own[0]['architecture'] or '?'})"]
    monkeypatch.setattr(blas_kernel, "loaded_kernels", lambda environment=None: (
        [{"internal_api": "openblas", "version": "0.3", "architecture": "Haswell"}] if environment is None else
        [{"internal_api": "openblas", "version": "0.3", "architecture": "SkylakeX"}]))
    line, warnings = blas_kernel.describe()
    assert line == "openblas 0.3, Haswell"
    assert warnings == ["MKL_DEBUG_CPU_TYPE=5 forces the Haswell kernel; without it OpenBLAS picks SkylakeX for "
                        "this CPU: unset it to time what this machine can do"]
