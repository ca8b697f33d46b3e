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
