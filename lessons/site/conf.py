"""Sphinx configuration of the course site: the lessons executed, the guides, the API and the CLI.

Build it from the repository's root (README.md, "The course site"):

    python -m sphinx -W --keep-going -c lessons/site -b html lessons lessons/_build/html

The source folder is `lessons/` itself, so the guides are the Markdown files there (readable on GitHub
as they are) and the lessons are the `NN_*.py` scripts, run by sphinx-gallery. MINIBN_SITE chooses the
size: `quick` (the default) runs every lesson with --smoke (under a minute on 2 cores; what the tests
build); `full` runs them with their defaults (lessons 09-11 train for minutes each: for publishing).
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

SITE = Path(__file__).resolve().parent
LESSONS = SITE.parent
sys.path.insert(0, str(LESSONS.parent))  # minibn from this checkout, for autodoc and sphinx-click
sys.path.insert(0, str(SITE))            # gallery_hooks.py and docstrings.py

SIZE = os.environ.get("MINIBN_SITE", "quick")
if SIZE not in ("quick", "full"):
    # Sphinx reports anything raised here (sys.exit included) with a traceback and a plea to report a bug in
    # Sphinx; a misspelt size is the user's to fix, so it gets one line and exit status 2, before any work.
    print(f"Error: MINIBN_SITE must be quick or full, not {SIZE!r}", file=sys.stderr)
    os._exit(2)

project = "minibn"
author = "the minibn authors"
copyright = "2026, the minibn authors"

extensions = [
    "myst_parser",                 # the guides are Markdown, so GitHub shows them too
    "sphinx_gallery.gen_gallery",  # runs the `# %%` lessons as they are: text, code, output, figures
    "sphinx.ext.autodoc",          # the API from the docstrings
    "docstrings",                  # ... shown as they are written (lessons/site/docstrings.py)
    "sphinx_click",                # the command line from the commands' own help
    "matplotlib.sphinxext.plot_directive",  # charts drawn from committed data when the site builds
    "sphinx.ext.githubpages",      # writes .nojekyll, so GitHub Pages serves the _static folder
]
highlight_language = "none"        # a block without a language (shell commands, shapes) is shown as it is
default_role = "code"              # `x` is code, as in the lessons' Markdown cells and on GitHub
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "out", "exercises", "site", "**.ipynb_checkpoints"]
myst_heading_anchors = 3           # [text](page.md#a-heading) links work as on GitHub
# sphinx-gallery copies the lessons into lessons/gallery/, one folder below the lessons themselves, and its
# check for two lessons with one file name counts those copies too
suppress_warnings = ["sphinx_gallery.duplicate_filename"]

# -- The lessons ------------------------------------------------------------------------------------------
# sphinx-gallery writes the executed lessons to lessons/gallery/ and reruns only the lessons whose source
# changed since (it keeps an md5 of each). A build of the other size starts that folder afresh.
GALLERY = LESSONS / "gallery"
size_stamp = GALLERY / "size.txt"
if size_stamp.exists() and size_stamp.read_text() != SIZE:
    shutil.rmtree(GALLERY)
GALLERY.mkdir(exist_ok=True)
size_stamp.write_text(SIZE)
FIGURES = LESSONS / "_build" / f"lesson-out-{SIZE}"  # where the lessons write their figures (and runs)
os.environ["MINIBN_LESSON_OUT"] = str(FIGURES)      # read by lessons/common.py's lesson_args


sphinx_gallery_conf = {
    "examples_dirs": [str(LESSONS)],
    "gallery_dirs": [str(GALLERY)],
    "filename_pattern": r"/\d\d_[^/]+\.py$",   # run every numbered lesson
    "ignore_pattern": r"(common|training_helpers|__init__)\.py$",
    "reset_argv": "gallery_hooks.lesson_argv",
    "image_scrapers": ("gallery_hooks.lesson_figures",),
    "reset_modules": ("gallery_hooks.reset_lesson_figures",),
    "reset_modules_order": "before",
    "download_all_examples": False,
    "first_notebook_cell": None,
    "remove_config_comments": True,
    "abort_on_example_error": False,      # run every lesson, then fail the build if one failed
    "only_warn_on_example_error": False,
    "show_memory": False,
    "min_reported_time": 1,
    "within_subsection_order": "FileNameSortKey",
    "capture_repr": (),
    "plot_gallery": True,
    "write_computation_times": False,
}

# -- The API and the command line ---------------------------------------------------------------------------
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "undoc-members": True}  # a name without a docstring too
autodoc_typehints = "signature"

# -- Charts (home page, speed) --------------------------------------------------------------------------------------
plot_basedir = str(LESSONS)  # `.. plot:: site/charts/speed.py` from any page
plot_include_source = False
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 110)]

# -- HTML -------------------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = "minibn"
html_theme_options = {
    "navigation_with_keys": False,
    "header_links_before_dropdown": 5,
    "show_prev_next": True,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": [],
}
html_context = {"default_mode": "light"}  # else the theme logs a console error on a first visit from file://
html_static_path = ["_static"]
html_css_files = ["site.css"]
html_show_sourcelink = False
