"""Lesson 10: what gamma learns: histograms, the fraction near zero per stage and per depth.

What you learn: in BN-only training a channel whose random features do not help gets |gamma| near
zero, so BatchNorm switches it off. The paper finds a quarter to a third of the gammas near zero;
full training leaves far fewer there.
Run:   python lessons/10_what_gamma_learns.py        (BN-only at depths 8 and 14, full at 8: minutes)
       python lessons/10_what_gamma_learns.py --sweep runs/sweep-cpu --depths 14,20   (runs of `minibn sweep`)
       python lessons/10_what_gamma_learns.py --epochs 30 --subset 0 --test-subset 0   (hours on a CPU)
Look:  the per-stage table and out/10_gamma/gamma.png (BN-only vs full: where the gammas end).
"""
# %%
from pathlib import Path

import numpy as np
from common import console, lesson_args, plt, save, table
from training_helpers import add_training_arguments, dataset, smoke, train_run

from minibn.analysis import THRESHOLDS, fraction_below, gamma_by_stage
from minibn.models import cifar_resnet
from minibn.train import model_from_checkpoint

args = lesson_args("10_gamma", __doc__, lambda p: (add_training_arguments(p),
                                                  p.add_argument("--depths", default="8,14"),
                                                  p.add_argument("--sweep", type=Path, default=None,
                                                                 help="read the runs of a `minibn sweep --out` folder")))
if args.smoke:
    smoke(args)
    args.depths = "8"
depths = [int(d) for d in args.depths.split(",")]
data = None if args.sweep else dataset(args)


def gammas_of(folder: Path):
    model, _ = model_from_checkpoint(folder / "checkpoint.npz")
    return gamma_by_stage(model)


def run_folder(depth: int, mode: str) -> Path:
    """A run of --sweep if given, else one this lesson trains (or reuses)."""
    if args.sweep:
        return args.sweep / f"resnet{depth}-{mode}-seed{args.seed}"
    return train_run(args, data, mode, depth=depth)


# %%
init = gamma_by_stage(cifar_resnet(depths[0]))
pairs = [(d, "bn") for d in depths] + [(depths[0], "all")]  # BN-only per depth; full training for comparison
trained = {(d, mode): gammas_of(run_folder(d, mode)) for d, mode in pairs}

rows = []
for (depth, mode), groups in trained.items():
    for stage, g in groups.items():
        rows.append([f"ResNet-{depth} {mode}", stage, len(g), *(f"{fraction_below(g)[t]:.1%}" for t in THRESHOLDS)])
table("fraction of |gamma| below each threshold", ["run", "where", "channels",
                                                    *(f"< {t:g}" for t in THRESHOLDS)], rows)
table("all BN layers together", ["run", *(f"< {t:g}" for t in THRESHOLDS)],
      [["at initialization (U[0,1))", *(f"{fraction_below(np.concatenate(list(init.values())))[t]:.1%}"
                                        for t in THRESHOLDS)]]
      + [[f"ResNet-{d} {m}", *(f"{fraction_below(np.concatenate(list(g.values())))[t]:.1%}" for t in THRESHOLDS)]
         for (d, m), g in trained.items()])

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
for ax, mode in zip(axes, ("bn", "all")):
    everything = np.concatenate(list(trained[(depths[0], mode)].values()))
    ax.hist(np.concatenate(list(init.values())), bins=40, range=(-0.5, 1.5), alpha=0.4, label="initialization")
    ax.hist(everything, bins=40, range=(-0.5, 1.5), alpha=0.7, label="after training")
    ax.set(title=f"ResNet-{depths[0]}, trained {mode}", xlabel="gamma")
    ax.legend(fontsize=8)
axes[0].set_ylabel("channels")
save(fig, args.out, "gamma.png")
console.print("Gammas move toward zero slowly: short runs on few images barely move them; the paper's effect "
              "needs the long runs (see lessons/README.md).")
