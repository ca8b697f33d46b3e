"""What every lesson shares: its command-line flags, an output folder, rich output and figures."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # lessons save PNGs; they never need a screen
import matplotlib.pyplot as plt  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

console = Console(highlight=False)
IN_NOTEBOOK = "ipykernel" in sys.modules  # run by Jupyter rather than from a shell
LESSONS = Path(__file__).resolve().parent
sys.path.insert(0, str(LESSONS.parent))  # run from a checkout without installing: minibn is next door
from minibn import fast  # noqa: E402


def lesson_args(name: str, doc: str | None, add_arguments=None) -> argparse.Namespace:
    """Parse the lesson's flags. Every lesson has --out (where figures go) and --smoke (tiny sizes).

    In a notebook there is no command line: MINIBN_LESSON_SMOKE=1 and MINIBN_LESSON_OUT=folder stand
    for --smoke and --out there (the notebook test uses them).
    """
    out = Path(os.environ.get("MINIBN_LESSON_OUT") or LESSONS / "out") / name
    parser = argparse.ArgumentParser(description=(doc or name).splitlines()[0],
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--out", type=Path, default=out, help="folder for the figures")
    parser.add_argument("--smoke", action="store_true", default=os.environ.get("MINIBN_LESSON_SMOKE") == "1",
                        help="smallest settings, seconds to run (the tests use it)")
    parser.add_argument("--fast-cpu", action=argparse.BooleanOptionalAction, default=None,
                        help="NumPy's fast path (minibn/fast) [default: on, or $MINIBN_FAST_CPU]")
    parser.add_argument("--fast-gpu", action=argparse.BooleanOptionalAction, default=None,
                        help="CuPy's flat-layout ops (minibn/fast/gpu.py) [default: on, or $MINIBN_FAST_GPU]")
    parser.add_argument("--kernels", action=argparse.BooleanOptionalAction, default=None,
                        help="CuPy's hand-written kernels (minibn/fast/kernels.py) [default: off, or $MINIBN_KERNELS]")
    if add_arguments:
        add_arguments(parser)
    args, _ = parser.parse_known_args([] if IN_NOTEBOOK else None)  # a notebook kernel has its own arguments
    fast.use(fast_cpu=args.fast_cpu, fast_gpu=args.fast_gpu, kernels=args.kernels)  # as minibn's commands
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
    """Save the figure as a PNG (and show it, in a notebook)."""
    path = out / name
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return show(path)


def show(path: Path) -> Path:
    """Say where a saved figure is; in a notebook, also show it."""
    console.print(f"figure: {path}")
    if IN_NOTEBOOK:
        from IPython.display import Image, display
        display(Image(filename=str(path)))
    return path
