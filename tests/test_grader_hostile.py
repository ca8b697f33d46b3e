"""A hostile tester's findings on the merged grader (issues 20-23): each failed before its fix."""
import json

from click.testing import CliRunner

from minibn.cli import main
from tests.conftest import BACKEND


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
