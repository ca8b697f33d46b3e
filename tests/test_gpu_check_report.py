"""`.ci/gpu-check suite` writes its JUnit report as it goes (.ci/junit_as_it_goes.py): a run killed at its time
limit still leaves the results of the tests it finished."""
import os
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

CI = Path(__file__).resolve().parent.parent / ".ci"


def test_a_killed_run_leaves_the_report_of_the_tests_it_finished(tmp_path):
    (tmp_path / "test_example.py").write_text(
        "import os, pytest\n"
        "def test_passes():\n    pass\n"
        "def test_fails():\n    assert 1 == 2\n"
        "@pytest.mark.skip(reason='not here')\ndef test_skipped():\n    pass\n"
        "def test_killed():\n    os._exit(9)  # as a time limit's SIGKILL: pytest writes nothing at the end\n")
    report = tmp_path / "report.xml"
    env = {**os.environ, "PYTHONPATH": str(CI)}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "junit_as_it_goes",
                           f"--junit-as-it-goes={report}", "test_example.py"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 9, done.stdout + done.stderr
    cases = {case.get("name"): [child.tag for child in case]
             for case in ElementTree.parse(report).getroot().iter("testcase")}
    assert cases == {"test_passes": [], "test_fails": ["failure"], "test_skipped": ["skipped"]}
