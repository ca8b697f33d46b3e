"""The command line through click's test runner: help, info, gradcheck, and error handling."""
import sys

import pytest

from click.testing import CliRunner

from minibn.cli import main
from tests.conftest import BACKEND


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_help_lists_commands():
    result = run("--help")
    assert result.exit_code == 0
    for command in ("info", "gradcheck"):
        assert command in result.output


def test_info_on_numpy():
    result = run("info", "--backend", "numpy")
    assert result.exit_code == 0
    assert "numpy" in result.output and "asked for numpy" in result.output


def test_gradcheck_passes_and_prints_a_table():
    result = run("gradcheck", "--backend", BACKEND)
    assert result.exit_code == 0, result.output
    assert "PASS" in result.output and "FAIL" not in result.output and "conv2d" in result.output


def test_cupy_without_cupy_is_a_usage_error_not_a_traceback(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)
    result = run("info", "--backend", "cupy")
    assert result.exit_code == 1
    assert result.output.startswith("Error: CuPy is not installed")
    assert "Traceback" not in result.output


def test_invalid_backend_choice():
    result = run("info", "--backend", "tpu")
    assert result.exit_code == 2 and "Invalid value" in result.output


def test_every_command_takes_backend():
    for name, command in main.commands.items():
        assert any(p.name == "backend_name" and "--backend" in p.opts for p in command.params), name


def test_gradcheck_json_has_one_passing_record_per_checked_input():
    import json
    result = run("gradcheck", "--backend", BACKEND, "--format", "json")
    records = json.loads(result.stdout)
    assert result.exit_code == 0 and len(records) > 60 and all(r["passed"] for r in records)
    assert {"check", "input", "max_abs_err", "max_rel_err", "worst_index"} <= set(records[0])


def test_a_bad_thread_count_is_a_usage_error(monkeypatch):
    from minibn.fast import threads
    monkeypatch.setattr(threads.switches, "threads", None)  # read the environment again
    monkeypatch.setenv("MINIBN_THREADS", "two")
    result = CliRunner().invoke(main, ["info", "--backend", "numpy"])
    assert result.exit_code == 2 and "MINIBN_THREADS must be a whole number" in result.output
    assert "Traceback" not in result.output


def test_the_fast_path_switches_are_the_same_on_every_command_that_computes():
    for name in ("train", "eval", "bench", "gradcheck", "info"):
        options = {opt for p in main.commands[name].params for opt in p.opts + p.secondary_opts}
        assert {"--fast-cpu", "--no-fast-cpu", "--fast-gpu", "--no-fast-gpu", "--kernels", "--no-kernels"} <= options, name


def test_info_says_which_implementation_each_op_runs():
    from minibn import fast
    from minibn.cli.info import _ops_of_a_step
    assert run("info", "--backend", "numpy", "--no-fast-cpu").exit_code == 0
    assert not fast.switches.fast_cpu  # the flag set the switch
    textbook = {op: where for op, where, _ in _ops_of_a_step()}
    fast.use(fast_cpu=True)
    flat = {op: where for op, where, _ in _ops_of_a_step()}
    assert textbook["Conv2d"] == "conv.py" and textbook["BatchNorm"] == "batchnorm.py" and "Conv3x3Flat" not in textbook
    if BACKEND == "numpy":
        assert flat["Conv3x3Flat"] == "fast/cpu_conv.py" and flat["BatchNormFlat"] == "fast/cpu_batchnorm.py"
        assert "Conv2d" not in flat and "BatchNorm" not in flat


@pytest.mark.parametrize("command", ["plot", "analyze"])
@pytest.mark.parametrize("out, message", [
    ("", "'' is no file name with an extension; give one, e.g. curves.png"),
    (".png", "'.png' is no file name with an extension"),
    ("t.xyz", "matplotlib cannot write .xyz files; end the name with one of"),
])
def test_a_figure_name_matplotlib_cannot_write_is_a_usage_error(tmp_path, monkeypatch, command, out, message):
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "checkpoint.npz"
    target.write_bytes(b"")  # never read: --out is checked first
    result = run(command, str(tmp_path if command == "plot" else target), "--out", out)
    assert result.exit_code == 2 and message in " ".join(result.output.split()), result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.npz"]  # no hidden .png


def test_bench_checks_its_json_path_before_benchmarking(monkeypatch):
    import minibn.bench

    def no_benchmark(*args, **kwargs):
        raise AssertionError("the benchmark ran before --json was checked")
    monkeypatch.setattr(minibn.bench, "run", no_benchmark)
    result = run("bench", "--backend", "numpy", "--json", "/proc/x.json")
    assert result.exit_code == 2 and "cannot write /proc/x.json" in " ".join(result.output.split()), result.output


def test_ctrl_c_before_a_command_handles_it_ends_with_130_and_one_line(monkeypatch):
    """A KeyboardInterrupt that reaches the group (Ctrl-C while a command still imports) is status 130, not
    click's "Aborted!" with status 1."""
    from minibn.cli import info as info_module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(info_module, "select_backend", interrupted)
    result = CliRunner().invoke(main, ["info"])
    assert result.exit_code == 130, result.output
    assert "Aborted" not in result.output and "interrupted" in result.output
