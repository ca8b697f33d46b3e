"""Lesson 09: BN-only versus full training versus the baselines (output only, random equal-count).

What you learn: the experiment itself. With every conv and linear weight frozen at its random
initialization, the paper finds that training only BatchNorm's gamma and beta (0.6% of ResNet-14's
parameters) still learns, while training the same number of randomly chosen conv weights, or only
the output layer, learns far less. The default run is small: it shows full training ahead and the
random baseline behind, but BN-only about level with the output layer (lessons/README.md has a
5,000-image run where BN-only pulls ahead).
Run:   python lessons/09_bn_only_vs_baselines.py        (4 small runs: a few minutes on 2 cores)
       python lessons/09_bn_only_vs_baselines.py --depth 14 --epochs 30 --subset 0 --test-subset 0
       minibn sweep --depths 14,20 --epochs 30 --out runs/sweep   (all four modes, on a GPU)
Look:  the table (trainable parameters vs accuracy) and out/09_modes/modes.png.
"""
# %%
import json

from common import console, lesson_args, plt, save, table
from training_helpers import add_training_arguments, dataset, smoke, train_run

from minibn.analysis import read_metrics

MODES = ["all", "bn", "output", "random"]
args = lesson_args("09_modes", __doc__, add_training_arguments)
if args.smoke:
    smoke(args)
data = dataset(args)

# %%
runs = {mode: train_run(args, data, mode) for mode in MODES}
summaries = {mode: json.loads((folder / "summary.json").read_text()) for mode, folder in runs.items()}
table(f"ResNet-{args.depth}, {args.epochs} epochs, {args.subset or 'all'} training images", [
    "trained", "trainable parameters", "final test acc", "best test acc"],
    [[mode, f"{s['trainable_parameters']:,}", f"{s['final_test_acc']:.1%}", f"{s['best_test_acc']:.1%}"]
     for mode, s in summaries.items()])

# %%
fig, ax = plt.subplots(figsize=(6.5, 4))
for mode, folder in runs.items():
    records = read_metrics(folder)
    ax.plot([r["epoch"] for r in records], [100 * r["test_acc"] for r in records], marker=".", label=mode)
ax.axhline(10, color="gray", ls=":", label="chance")
ax.set(xlabel="epoch", ylabel="test accuracy (%)", title=f"ResNet-{args.depth}: which parameters train")
ax.legend()
ax.grid(alpha=0.3)
save(fig, args.out, "modes.png")
console.print("The paper (160 epochs, all 50,000 images): BN-only ResNet-14 about 48%, full training about 91%; "
              "training random weights instead is far worse. Tiny runs show the order, not the numbers.")
