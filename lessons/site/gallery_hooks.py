"""How sphinx-gallery runs the lessons: their arguments, and where their figures go in the page.

conf.py names these by their import path ("gallery_hooks.lesson_argv"), so Sphinx can cache its
configuration. The lessons run with --smoke in the quick build (MINIBN_SITE=quick, the default).

The figures: a lesson saves each one as a PNG file (lessons/common.py's `save`, then `plt.close`), so

sphinx-gallery's matplotlib scraper, which collects open figures, finds none. This scraper is
sphinx-gallery's "custom image scraper" (its documentation has the recipe): before each lesson it notes
the PNG files already in the lessons' output folder and their times; after each code cell it copies the
files written since into the gallery's image paths, in the order they were written.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from sphinx_gallery.scrapers import figure_rst


def lesson_argv(script_name, gallery_conf) -> list[str]:
    """The command-line arguments each lesson runs with (its argparse reads sys.argv)."""
    return ["--smoke"] if os.environ.get("MINIBN_SITE", "quick") == "quick" else []


class LessonFigures:
    """An image scraper (and a reset hook) for the figures saved under $MINIBN_LESSON_OUT."""

    def __init__(self):
        self.seen: dict[Path, int] = {}

    def _pngs(self) -> dict[Path, int]:
        folder = Path(os.environ["MINIBN_LESSON_OUT"])  # set by conf.py; lessons/common.py writes there
        return {path: path.stat().st_mtime_ns for path in folder.rglob("*.png")}

    def reset(self, gallery_conf, fname, when=None) -> None:
        """Before each lesson: what is already there (older runs' figures) is not this lesson's."""
        self.seen = self._pngs()

    def __call__(self, block, block_vars, gallery_conf) -> str:
        written = {path: mtime for path, mtime in self._pngs().items() if self.seen.get(path) != mtime}
        self.seen.update(written)
        image_names = []
        for path in sorted(written, key=written.get):
            target = Path(next(block_vars["image_path_iterator"]))
            shutil.copyfile(path, target)
            image_names.append(str(target))
        return figure_rst(image_names, gallery_conf["src_dir"])


lesson_figures = LessonFigures()
reset_lesson_figures = lesson_figures.reset
