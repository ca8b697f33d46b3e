"""Show minibn's docstrings on the API page as they read in `help()`: plain text, kept verbatim.

minibn's docstrings are written for a reader of the source: shapes in columns, formulas such as
``max |a - b| / max(|a| + |b|)``, derivations indented to line up. Read as reStructuredText, which
autodoc does by default, the bars become substitutions and the columns become errors. So the first
paragraph (the summary) stays text, and the rest is one literal block, as written (less the double backquotes
that mark code in the source), in the smaller font of lessons/site/_static/site.css.
"""
from __future__ import annotations

import re


def summary_as_text(line: str) -> str:
    """The summary line with ``code`` as code and nothing else read as markup."""
    parts = re.split(r"``(.+?)``", line)  # odd parts were ``code``
    text = [re.sub(r"([\\*|`_\[\]<>])", r"\\\1", part) for part in parts[0::2]]
    code = [f":code:`{part}`" if "`" not in part else part for part in parts[1::2]]
    # RST wants a space or punctuation around inline markup: "``block``s" becomes ":code:`block`\ s"
    code = [c + ("\\ " if i + 1 < len(text) and text[i + 1][:1].isalnum() else "") for i, c in enumerate(code)]
    code = [("\\ " if text[i][-1:].isalnum() else "") + c for i, c in enumerate(code)]
    return "".join(t + (code[i] if i < len(code) else "") for i, t in enumerate(text))


def verbatim(app, what, name, obj, options, lines: list[str]) -> None:
    """autodoc-process-docstring: the summary as text, the rest verbatim (autodoc's lines, edited in place)."""
    if not lines:
        return
    end = lines.index("") if "" in lines else len(lines)  # the summary is the first paragraph
    summary, rest = " ".join(line.strip() for line in lines[:end]), lines[end:]
    while rest and not rest[0].strip():
        rest.pop(0)
    lines[:] = [summary_as_text(summary)]
    if rest:  # ``x`` marks code in the source; verbatim, the whole block is code already
        lines += ["", ".. code-block:: none", "   :class: docstring", ""]
        lines += ["   " + line.replace("``", "") for line in rest] + [""]


def setup(app):
    app.connect("autodoc-process-docstring", verbatim)
    return {"parallel_read_safe": True}
