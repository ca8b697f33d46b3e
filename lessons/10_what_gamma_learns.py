"""Lesson 10: what gamma learns: histograms, the fraction near zero per stage and per depth.

What you learn: in BN-only training a channel whose random features do not help gets |gamma| near
zero, so BatchNorm switches it off. The paper finds a quarter to a third of the gammas near zero;
full training leaves far fewer there.
Run:   python lessons/10_what_gamma_learns.py        (BN-only and full runs at depths 8 and 14: minutes)
       python lessons/10_what_gamma_learns.py --epochs 30 --subset 0 --test-subset 0   (the real effect)
Look:  the per-stage table and out/10_gamma/gamma.png (BN-only vs full: where the gammas end).
"""
# %%
import numpy as np
from common import console, lesson_args, plt, save, table
from training_helpers import add_training_arguments, dataset, smoke, train_run

from minibn.analysis import THRESHOLDS, fraction_below, gamma_by_stage
from minibn.models import cifar_resnet

args = lesson_args("10_gamma", __doc__, lambda p: (add_training_arguments(p, depth=14),
                                                  p.add_argument("--depths", default="8,14")))
if args.smoke:
    smoke(args)
    args.depths = "8"
depths = [int(d) for d in args.depths.split(",")]
data = dataset(args)


def gammas_of(folder, depth):
    from minibn.train import model_from_checkpoint
    model, _ = model_from_checkpoint(folder / "checkpoint.npz")
    return gamma_by_stage(model)


# %%
init = gamma_by_stage(cifar_resnet(depths[-1]))
trained = {(d, mode): gammas_of(train_run(args, data, mode, depth=d), d) for d in depths for mode in ("bn", "all")}

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
deepest = depths[-1]
for ax, mode in zip(axes, ("bn", "all")):
    everything = np.concatenate(list(trained[(deepest, mode)].values()))
    ax.hist(np.concatenate(list(init.values())), bins=40, range=(-0.5, 1.5), alpha=0.4, label="initialization")
    ax.hist(everything, bins=40, range=(-0.5, 1.5), alpha=0.7, label="after training")
    ax.set(title=f"ResNet-{deepest}, trained {mode}", xlabel="gamma")
    ax.legend(fontsize=8)
axes[0].set_ylabel("channels")
save(fig, args.out, "gamma.png")
console.print(f"These runs are {args.epochs} epochs on {args.subset or 'all'} images; gammas move toward zero "
              "slowly, so the full effect needs the long runs (see lessons/README.md).")
