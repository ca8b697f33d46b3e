"""What every lesson shares: its command-line flags, an output folder, rich output and figures."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # lessons save PNGs; they never need a screen
import matplotlib.pyplot as plt  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

console = Console(highlight=False)
LESSONS = Path(__file__).resolve().parent
sys.path.insert(0, str(LESSONS.parent))  # run from a checkout without installing: minibn is next door


def lesson_args(name: str, doc: str, add_arguments=None) -> argparse.Namespace:
    """Parse the lesson's flags. Every lesson has --out (where figures go) and --smoke (tiny sizes)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0], formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--out", type=Path, default=LESSONS / "out" / name, help="folder for the figures")
    parser.add_argument("--smoke", action="store_true", help="smallest settings, seconds to run (the tests use it)")
    if add_arguments:
        add_arguments(parser)
    args, _ = parser.parse_known_args()  # known only: a notebook kernel passes its own arguments
    args.out.mkdir(parents=True, exist_ok=True)
    console.rule(f"[bold]{name}[/bold]")
    return args


def table(title: str, columns: list[str], rows: list[list]) -> None:
    t = Table(title=title)
    for i, column in enumerate(columns):
        t.add_column(column, justify="left" if i == 0 else "right")
    for row in rows:
        t.add_row(*[f"{v:.4g}" if isinstance(v, float) else str(v) for v in row])
    console.print(t)


def save(fig, out: Path, name: str) -> Path:
    path = out / name
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    console.print(f"figure: {path}")
    return path
