"""The course site (README, "The course site"), built at its quick size and read as a reader would.

One build for the module: the README's site command, with warnings as errors, from a copy of
lessons/ and README.md (so a site the developer built, perhaps at full size, is left alone) into
lessons/_build/site-test/html, where CI keeps it with a screenshot of a lesson page. Then: every internal
link and image resolves, the pages a reader needs are there, no exercise solution is, and Debian's
headless Chromium (through selenium) opens the pages with no console error, shows every lesson's
figures and finds BatchNorm2d with the site's search.
"""
from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from tests.conftest import BACKEND

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "lessons" / "_build" / "site-test"
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
IN_CI = os.environ.get("CI") == "true"
LESSONS = sorted(path.stem for path in (ROOT / "lessons").glob("[0-9][0-9]_*.py"))

pytestmark = pytest.mark.skipif(BACKEND != "numpy", reason="the site is built once, in the NumPy run of the suite")


def readme_site_command() -> str:
    """The build command between the README's site-command markers, without its `pip install` part."""
    text = (ROOT / "README.md").read_text()
    block = text.split("<!-- site-command -->")[1].split("<!-- /site-command -->")[0]
    command = next(line for line in block.splitlines() if "sphinx" in line)
    return command.split("&&")[-1].strip()


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    pytest.importorskip("sphinx_gallery", reason='the site needs the docs extra: pip install ".[docs]"')
    command = readme_site_command()
    assert command.startswith("python -m sphinx -W") and " lessons lessons/_build/html" in command, command
    source = tmp_path_factory.mktemp("site") / "lessons"
    shutil.copytree(ROOT / "lessons", source, ignore=shutil.ignore_patterns("_build", "gallery", "out", "*.ipynb_*"))
    shutil.copyfile(ROOT / "README.md", source.parent / "README.md")  # the home page includes its quick start
    shutil.rmtree(BUILD, ignore_errors=True)
    args = command.split()[1:]  # the README's command, on the copy
    args = [str(source / "site") if a == "lessons/site" else str(source) if a == "lessons" else
            str(BUILD / "html") if a == "lessons/_build/html" else a for a in args]
    env = {**os.environ, "MINIBN_SITE": "quick", "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    env.pop("MINIBN_BACKEND", None)
    start = time.monotonic()
    done = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    seconds = time.monotonic() - start
    (BUILD / "build.log").write_text(done.stdout + done.stderr)
    assert done.returncode == 0, f"the site build failed ({BUILD / 'build.log'}):\n{done.stderr[-4000:]}"
    print(f"quick site built in {seconds:.0f} s")
    return BUILD / "html"


class Links(HTMLParser):
    """The href and src of a page, and the ids it defines."""

    def __init__(self):
        super().__init__()
        self.targets: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        for name in ("href", "src"):
            if attrs.get(name) and tag in ("a", "img", "link", "script", "source"):
                self.targets.append(attrs[name])


def page_text(page: Path) -> str:
    """What a reader sees of a page: its text without the tags (code is split into highlighted spans)."""
    return html.unescape(re.sub(r"<[^>]+>", "", page.read_text(encoding="utf-8", errors="replace")))


def parse(page: Path) -> Links:
    links = Links()
    links.feed(page.read_text(encoding="utf-8"))
    return links


def test_site_has_every_page_a_reader_needs(site):
    assert (site / "index.html").exists()
    for lesson in LESSONS:
        page = (site / "gallery" / f"{lesson}.html").read_text()
        assert "sphx-glr-script-out" in page, f"{lesson}: no printed output"
        assert "_downloads" in page and f"{lesson}.ipynb" in page and f"{lesson}.py" in page, lesson
    for page, must_hold in {"exercises.html": "ex_batchnorm.py", "INSTRUCTORS.html": "Gradescope",
                            "guide/reproducing.html": "--launcher slurm", "guide/speed.html": "GPU: never measured",
                            "guide/api.html": "BatchNorm2d", "guide/cli.html": "--resume",
                            "guide/training.html": "When things go wrong", "guide/testing.html": "stand-in"}.items():
        assert must_hold in page_text(site / page), page


def test_every_internal_link_and_image_resolves(site):
    broken = []
    pages = sorted(page for page in site.rglob("*.html") if "_static" not in page.parts)  # not the theme's templates
    ids = {page: parse(page).ids for page in pages}
    for page in pages:
        for target in parse(page).targets:
            url = urlsplit(target)
            if url.scheme or target.startswith("//"):
                continue  # an external link: not followed offline
            path = (page.parent / unquote(url.path)).resolve() if url.path else page
            if url.path.endswith("/") or path.is_dir():
                path = path / "index.html"
            if not path.exists():
                broken.append(f"{page.relative_to(site)}: {target}")
            elif url.fragment and path.suffix == ".html":
                fragment_ids = ids.get(path) or parse(path).ids
                if unquote(url.fragment) not in fragment_ids:
                    broken.append(f"{page.relative_to(site)}: {target} (no such anchor)")
    assert not broken, "\n".join(broken[:40])


def test_no_exercise_solution_is_on_the_site(site):
    """The stubs are on the site; the lines only the reference solutions have are not, on any page."""
    def code_lines(path: Path) -> set[str]:
        """The code inside the file's functions (indented), without comments."""
        return {line.split("  #")[0].strip() for line in path.read_text().splitlines()
                if line.startswith("        ")} - {""}

    stub_lines = set().union(*(code_lines(stub) for stub in (ROOT / "lessons" / "exercises").glob("ex_*.py")))
    solution_lines = {line for solution in (ROOT / "tests" / "exercise_solutions").glob("ex_*.py")
                      for line in code_lines(solution) - stub_lines
                      if len(line) > 12 and not line.startswith(("#", '"""'))}
    assert len(solution_lines) > 20
    for page in site.rglob("*"):
        if page.suffix not in (".html", ".txt", ".py", ".ipynb", ".js"):
            continue
        text = page_text(page)
        leaked = [line for line in solution_lines if line in text]
        assert not leaked, f"{page.relative_to(site)} holds a line of a reference solution: {leaked[0]}"
    assert not list(site.rglob("*exercise_solutions*"))


@pytest.fixture(scope="module")
def browser(site):
    """Debian's chromium, headless, driven through its own chromedriver (selenium downloads nothing)."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append('selenium (pip install ".[dev]")')
    if missing:
        why = f"the browser tests need {', '.join(missing)} (Debian: apt-get install chromium chromium-driver)"
        if IN_CI:
            pytest.fail(why)
        pytest.skip(why)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,900",
                 "--allow-file-access-from-files"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def open_page(browser, page: Path) -> list[str]:
    """Open a page; return its console errors."""
    browser.get_log("browser")  # forget the previous page's messages
    browser.get(page.as_uri())
    deadline = time.monotonic() + 20
    while browser.execute_script("return document.readyState") != "complete" and time.monotonic() < deadline:
        time.sleep(0.1)
    return [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def test_pages_load_in_chromium_without_console_errors(site, browser):
    for page in ("index.html", f"gallery/{LESSONS[4]}.html", f"gallery/{LESSONS[7]}.html", "guide/api.html"):
        errors = open_page(browser, site / page)
        assert not errors, f"{page}: {errors}"
        assert browser.title and "minibn" in browser.title, page
    open_page(browser, site / "gallery" / f"{LESSONS[4]}.html")
    screenshot = BUILD / f"screenshot-{LESSONS[4]}.png"
    assert browser.save_screenshot(str(screenshot)) and screenshot.stat().st_size > 10_000


def test_every_lesson_shows_its_figures(site, browser):
    for lesson in LESSONS:
        open_page(browser, site / "gallery" / f"{lesson}.html")
        widths = browser.execute_script(
            "return Array.from(document.querySelectorAll('img.sphx-glr-single-img, img.sphx-glr-multi-img'))"
            ".map(img => img.complete ? img.naturalWidth : 0)")
        assert widths and all(width > 0 for width in widths), f"{lesson}: figures {widths}"


def test_search_finds_batchnorm2d(site, browser):
    open_page(browser, site / "search.html")
    browser.get((site / "search.html").as_uri() + "?q=BatchNorm2d")
    deadline, found = time.monotonic() + 30, []
    while time.monotonic() < deadline and not found:
        found = browser.execute_script(
            "return Array.from(document.querySelectorAll('#search-results li')).map(li => li.textContent)")
        time.sleep(0.2)
    assert any("BatchNorm2d" in result for result in found), found


def test_a_misspelt_size_is_one_line(tmp_path):
    pytest.importorskip("sphinx_gallery", reason='the site needs the docs extra: pip install ".[docs]"')
    env = {**os.environ, "MINIBN_SITE": "ful", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "sphinx", "-W", "-c", "lessons/site", "-b", "html", "lessons",
                           str(tmp_path / "html")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == "Error: MINIBN_SITE must be quick or full, not 'ful'"
