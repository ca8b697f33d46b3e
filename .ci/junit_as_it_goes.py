"""A pytest plugin for .ci/gpu-check: the JUnit XML report rewritten after every test, so that a run stopped at
its time limit (or killed) still leaves the results of the tests it finished. pytest's own --junitxml writes
only at the end.

    PYTHONPATH=.ci python -m pytest -p junit_as_it_goes --junit-as-it-goes=report.xml
"""
from __future__ import annotations

import os
import xml.etree.ElementTree as ElementTree


def pytest_addoption(parser):
    parser.addoption("--junit-as-it-goes", metavar="PATH", help="rewrite this JUnit XML report after each test")


def pytest_configure(config):
    path = config.getoption("--junit-as-it-goes")
    if path:
        config.pluginmanager.register(_Report(path), "junit-as-it-goes")


class _Report:
    def __init__(self, path: str):
        self.path, self.suite = path, ElementTree.Element("testsuite", name="pytest")
        self.cases: dict[str, ElementTree.Element] = {}
        self._write()

    def pytest_runtest_logreport(self, report):
        if report.when == "call" or report.failed or report.skipped:
            classname, _, name = report.nodeid.rpartition("::")
            case = self.cases.get(report.nodeid)
            if case is None:
                case = self.cases[report.nodeid] = ElementTree.SubElement(
                    self.suite, "testcase", classname=classname.replace("/", ".").removesuffix(".py"), name=name)
            case.set("time", f"{report.duration:.3f}")
            if report.failed:
                tag = "failure" if report.when == "call" else "error"
                ElementTree.SubElement(case, tag, message=f"{report.when} failed").text = report.longreprtext
            elif report.skipped:
                reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
                ElementTree.SubElement(case, "skipped", message=reason)
            self._write()

    def _write(self):
        temporary = f"{self.path}.tmp"
        ElementTree.ElementTree(self.suite).write(temporary, encoding="utf-8", xml_declaration=True)
        os.replace(temporary, self.path)  # whole or not at all, whenever the run stops
