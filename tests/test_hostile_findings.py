"""A hostile tester's findings on the merged main (issues 20-23): each test failed before its fix."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from minibn.cli import main
from minibn.runs import RunFolderError, run_folder_lock
from minibn.run_files import append_record, write_json
from tests.conftest import BACKEND
from tests.fake_cifar import make_fake_cifar


def grade(path, *options):
    return CliRunner().invoke(main, ["gradcheck", str(path), "--backend", BACKEND, *options])


# Its top level says conv2d (three checks), but at run time it names ReLU, whose answer minibn's own op gives:
# it was graded on relu's one check, passed, and Gradescope gave the conv2d submission full marks.
SWITCHES_EXERCISE = '''
EXERCISE = "conv2d"
from minibn.ops import ReLU
globals()["EXERCISE"] = "relu"
'''


def test_a_file_is_graded_on_the_exercise_its_top_level_assigns_not_one_it_switches_to(tmp_path):
    path = tmp_path / "ex_conv.py"
    path.write_text(SWITCHES_EXERCISE)
    result = grade(path, "--format", "json")
    records = json.loads(result.stdout)
    assert result.exit_code == 1 and not any(r["passed"] for r in records), result.output
    assert {r["exercise"] for r in records} == {"conv2d"}
    assert any("relu" in r["message"] and "conv2d" in r["message"] for r in records)


def test_a_submission_with_no_exercise_file_still_gets_a_gradescope_result_saying_why(tmp_path):
    """Gradescope found no results.json (the autograder 'failed to execute') when a student handed in only a
    helper, or nothing: the student saw no reason and the instructor a broken autograder."""
    (tmp_path / "submission").mkdir()
    (tmp_path / "submission" / "helpers.py").write_text("x = 1\n")
    out = tmp_path / "results" / "results.json"
    result = grade(tmp_path / "submission", "--format", "gradescope", "--output", str(out), "--seed", "3")
    assert result.exit_code == 1 and "no exercise files" in result.output
    results = json.loads(out.read_text())
    assert results["score"] == 0 and results["tests"] == []
    assert results["output"].startswith("no exercise files") and "--seed 3" in results["output"]


def test_output_without_a_json_format_is_a_usage_error_not_a_table_and_no_file(tmp_path):
    """`--output grades.json` alone printed the table, wrote no file and exited 0: a class's grades lost."""
    out, submission = tmp_path / "grades.json", tmp_path / "ex_relu.py"
    submission.write_text('EXERCISE = "relu"\nfrom minibn.ops import ReLU\n')
    result = grade(submission, "--output", str(out))
    assert result.exit_code == 2 and "--format json" in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_a_file_that_raises_a_huge_message_at_import_gets_a_short_row(tmp_path):
    """An exception at import carried its whole message (megabytes) into the row, the table and the JSON; the
    same message raised by a check was already cut to MESSAGE_LIMIT characters."""
    from minibn.grading import MESSAGE_LIMIT
    path = tmp_path / "ex_relu.py"
    path.write_text('EXERCISE = "relu"\nraise ValueError("ab " * 1_000_000)\n')
    result = grade(path, "--format", "json")
    [record] = json.loads(result.stdout)
    assert result.exit_code == 1 and record["status"] == "error" and record["message"].startswith("ValueError: ab")
    assert len(record["message"]) <= MESSAGE_LIMIT


# ---- run folders ------------------------------------------------------------------------------------
def test_a_locked_run_folder_moved_aside_and_replaced_is_not_written_by_its_old_run(tmp_path):
    """The lock holds the folder, but the run wrote by path: after `mv run run.old; mkdir run` it wrote into the
    new folder, which a second run could lock too (metrics 5, 6, 6, 7, 7, ...; a 30-epoch run's summary said 51)."""
    out = tmp_path / "run"
    with run_folder_lock(out):
        write_json(out / "config.json", {"depth": 8})
        out.rename(tmp_path / "run.old")
        out.mkdir()
        for write in (lambda: write_json(out / "summary.json", {}), lambda: append_record(out / "metrics.jsonl", {})):
            with pytest.raises(RunFolderError, match="moved, removed or replaced"):
                write()
    assert list(out.iterdir()) == [] and (tmp_path / "run.old" / "config.json").exists()


def test_a_training_run_whose_folder_is_moved_aside_stops_with_one_line(tmp_path):
    make_fake_cifar(tmp_path / "data")
    out = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "minibn", "train", "--backend", BACKEND, "--depth", "8", "--width",
                              "4", "--batch-size", "50", "--epochs", "200", "--data-dir", str(tmp_path / "data"),
                              "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    try:
        deadline = time.time() + 120
        while not (out / "checkpoint.npz").exists():
            assert time.time() < deadline and first.poll() is None
            time.sleep(0.05)
        out.rename(tmp_path / "run.old")
        out.mkdir()
        _, stderr = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.send_signal(signal.SIGKILL)
            first.wait()
    assert first.returncode == 1 and "Traceback" not in stderr and "moved, removed or replaced" in stderr
    assert list(out.iterdir()) == []


def test_a_40_gb_sparse_metrics_log_is_one_line_for_plot_and_resume(tmp_path):
    """plot read the whole log (MemoryError, a traceback); train --resume said "out of memory at batch size 128 ...
    start a new run with --batch-size 64", advice that does not help."""
    make_fake_cifar(tmp_path / "data")
    out = tmp_path / "run"
    common = ["--backend", BACKEND, "--depth", "8", "--width", "4", "--batch-size", "50", "--epochs", "1",
              "--data-dir", str(tmp_path / "data"), "--out", str(out)]
    assert CliRunner().invoke(main, ["train", *common]).exit_code == 0
    with open(out / "metrics.jsonl", "r+b") as log:
        log.truncate(40 << 30)  # sparse: no disk used
    for command in (["plot", str(out), "--out", str(tmp_path / "curves.png")], ["train", "--resume", *common]):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
        assert "metrics.jsonl is over 64 MiB" in result.output and "batch-size" not in result.output


def test_a_right_answer_that_leaves_a_thread_running_passes_without_waiting_for_the_time_limit(tmp_path):
    """The child waited for the file's thread after it had sent every result: the file was 'stopped after N s, the
    time limit' and failed, and each such file cost the whole --timeout."""
    path = tmp_path / "ex_relu.py"
    path.write_text('EXERCISE = "relu"\nimport threading, time\nfrom minibn.ops import ReLU\n'
                    'threading.Thread(target=time.sleep, args=(1000,)).start()\n')
    started = time.monotonic()
    result = grade(path, "--timeout", "20")
    assert result.exit_code == 0 and time.monotonic() - started < 15, result.output


def test_out_of_memory_on_a_resumed_run_at_the_smallest_batch_gives_no_same_size_advice():
    """Issue 20's leftover, on resume: "out of memory at batch size 2, ...; start a new run with --batch-size 2"."""
    from minibn.cli.common import out_of_memory
    message = out_of_memory(2, 2, resumed=True).message
    assert "--batch-size 2" not in message and "smallest" in message
    assert "--batch-size 64" in out_of_memory(128, 2, resumed=True).message


@pytest.mark.parametrize("text", ["{garbage", '["a list"]'])
def test_a_damaged_slurm_jobs_file_is_one_line_for_any_sweep(tmp_path, text):
    """sweep/slurm/jobs.json is read by every sweep (a local one too): a damaged one was a JSONDecodeError
    traceback."""
    (tmp_path / "sweep" / "slurm").mkdir(parents=True)
    (tmp_path / "sweep" / "slurm" / "jobs.json").write_text(text)
    result = CliRunner().invoke(main, ["sweep", "--backend", BACKEND, "--data", "sample", "--depths", "8", "--modes",
                                       "bn", "--epochs", "1", "--out", str(tmp_path / "sweep")])
    assert result.exit_code == 1 and "Traceback" not in result.output and result.exception is not None
    assert "jobs.json is not the list of Slurm jobs" in result.output and "delete it" in result.output


def test_a_log_line_without_the_numbers_of_a_record_is_named_not_a_key_error(tmp_path):
    """{"epoch": 2} passed for a record: `plot` said "Error: 'test_acc'", and resuming a finished run whose log
    ended with it was a KeyError traceback."""
    make_fake_cifar(tmp_path / "data")
    out = tmp_path / "run"
    common = ["--backend", BACKEND, "--depth", "8", "--width", "4", "--batch-size", "50", "--epochs", "1",
              "--data-dir", str(tmp_path / "data"), "--out", str(out)]
    assert CliRunner().invoke(main, ["train", *common]).exit_code == 0
    good = (out / "metrics.jsonl").read_text()
    (out / "metrics.jsonl").write_text(good + '{"epoch": 1}\n')  # last: a torn write, left out
    result = CliRunner().invoke(main, ["train", "--resume", *common])
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    (out / "metrics.jsonl").write_text('{"epoch": 1}\n' + good)
    result = CliRunner().invoke(main, ["plot", str(out), "--out", str(tmp_path / "curves.png")])
    assert result.exit_code == 1 and "metrics.jsonl line 1 is not a metrics record; delete that line" in result.output


def test_a_checkpoint_whose_metadata_claims_a_huge_width_is_refused_before_building_it(tmp_path):
    """eval built the model from the metadata first: width 100000 was a 671 GiB MemoryError traceback."""
    import numpy as np
    make_fake_cifar(tmp_path / "data")
    out = tmp_path / "run"
    assert CliRunner().invoke(main, ["train", "--backend", BACKEND, "--depth", "8", "--width", "4", "--batch-size",
                                     "50", "--epochs", "1", "--data-dir", str(tmp_path / "data"), "--out",
                                     str(out)]).exit_code == 0
    arrays = dict(np.load(out / "checkpoint.npz"))
    meta = json.loads(str(arrays["meta"]))
    meta["config"]["width"] = 100_000
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(out / "checkpoint.npz", **arrays)
    for command in ("eval", "analyze"):
        result = CliRunner().invoke(main, [command, str(out / "checkpoint.npz"), "--data-dir", str(tmp_path / "data")]
                                    if command == "eval" else [command, str(out / "checkpoint.npz")])
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
        assert "metadata says depth 8, width 100000, but its arrays" in " ".join(result.output.split())
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "width": 100_000}))  # the folder agrees with it
    result = CliRunner().invoke(main, ["train", "--resume", "--backend", BACKEND, "--data-dir", str(tmp_path / "data"),
                                       "--out", str(out)])
    assert result.exit_code == 1 and "out of memory" not in result.output, result.output
    assert "do not fit the ResNet-8 of width 100000" in " ".join(result.output.split())
