"""The paper's idea in one figure: how little BN-only trains, and what it reaches against depth.

Drawn when the site builds (matplotlib's plot directive). Left: the trainable parameters of each mode,
counted on the models minibn builds. Right: BN-only test accuracy against depth, the paper's (160
epochs, all the data, from minibn.analysis.PAPER) and minibn's measured runs, read from the table
"Longer runs" of lessons/guide/reproducing.md, so the chart and the page cannot disagree.
"""
import re
from pathlib import Path

import matplotlib.pyplot as plt

# the plot directive runs this with the working directory set to this folder, and without __file__
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()

from minibn.analysis import PAPER
from minibn.models import cifar_resnet, set_trainable

REPRODUCING = HERE.parents[1] / "guide" / "reproducing.md"


def measured_bn_only() -> dict[int, dict[int, float]]:
    """{epochs: {depth: BN-only accuracy %}} from the rows `| depth | epochs | all | bn | output | random |`."""
    text = REPRODUCING.read_text()
    table = text[text.index("**Longer runs**"):]
    table = table[table.index("| depth | epochs |"):].split("\n\n")[0]
    results: dict[int, dict[int, float]] = {}
    for depth, epochs, _all, bn in re.findall(r"^\| (\d+) \| (\d+) \| ([^|]*)\| ([\d.]+)% \|", table, re.M):
        results.setdefault(int(epochs), {})[int(depth)] = float(bn)
    if not results:
        raise SystemExit(f"no BN-only rows found in the 'Longer runs' table of {REPRODUCING}")
    return results


fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
modes = ["all", "bn", "output", "random"]
counts = [set_trainable(cifar_resnet(20, seed=0), mode) for mode in modes]
left.bar(modes, counts, color=["grey", "tab:blue", "tab:orange", "tab:green"])
left.set_yscale("log")
left.set_ylabel("trainable parameters")
left.set_title("ResNet-20: what each mode trains")
for x, count in enumerate(counts):
    left.text(x, count, f"{count:,}", ha="center", va="bottom", fontsize=8)

for name, style in (("bn", "o--"), ("bn (re-implementation)", "s:")):
    depths = sorted(PAPER[name])
    right.plot(depths, [PAPER[name][d] for d in depths], style, color="tab:blue", alpha=0.6,
               label=f"paper: {name}, 160 epochs, all data")
for (epochs, points), color in zip(sorted(measured_bn_only().items()), ["black", "tab:red", "tab:purple"]):
    depths = sorted(points)
    right.plot(depths, [points[d] for d in depths], "o-", color=color,
               label=f"minibn (CPU): {epochs} epochs, 5,000 images")
right.axhline(10, color="grey", lw=0.8)
right.text(8, 11, "chance", color="grey", fontsize=8)
right.set_xscale("log")
right.set_xlabel("depth")
right.set_ylabel("BN-only test accuracy (%)")
right.set_title("BN-only accuracy against depth")
right.legend(fontsize=7)
fig.tight_layout()
