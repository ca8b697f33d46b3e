# %%
"""Lesson 11: accuracy versus depth, with the paper's numbers beside ours
======================================================================

What you learn: in the paper, BN-only accuracy grows with depth (a deeper net has more random
features for BatchNorm to choose from) while full training saturates early. This lesson trains
BN-only ResNets of three depths (or reads the results of `minibn sweep`) and plots them next to
the paper's.

Run::

    python lessons/11_accuracy_vs_depth.py --data-dir DIR            (depths 8, 14, 20 on 5,000 images)
    python lessons/11_accuracy_vs_depth.py --results runs/sweep-cpu (a finished sweep's results)
    minibn sweep --depths 14,32,56,110 --modes bn,all --epochs 160 --out runs/paper   (the real one)

Look: out/11_depth/accuracy_vs_depth.png and the table.

Measured 2026-11-26, defaults, on 2 cores (Intel Xeon, NumPy + OpenBLAS), CIFAR-10's first 5,000
training and 1,000 test images, 8 epochs, seed 0: 263 s. BN-only final test accuracy: ResNet-8 23.2%,
ResNet-14 28.1%, ResNet-20 26.7%. Going deeper than 8 helps, but this short run does not show the
paper's steady growth with depth (ResNet-14 about 48% up to ResNet-866 82% after 160 epochs on all
the data): deeper nets need more training than 8 epochs on 5,000 images give them.
"""
# %%
from pathlib import Path

from common import console, lesson_args, show, table
from training_helpers import add_training_arguments, dataset, runs_folder, smoke, train_run

from minibn.analysis import PAPER, collect_results, plot_accuracy_vs_depth

args = lesson_args("11_depth", __doc__, lambda p: (add_training_arguments(p, epochs=8, subset=5000,
                                                                         test_subset=1000),
                                                  p.add_argument("--depths", default="8,14,20"),
                                                  p.add_argument("--results", type=Path, default=None,
                                                                 help="a `minibn sweep --out` folder")))
if args.smoke:
    smoke(args)
    args.depths = "8"

# %%
if args.results:
    rows = collect_results(args.results)
    where = args.results
else:
    data = dataset(args)
    folders = {train_run(args, data, "bn", depth=int(d)) for d in args.depths.split(",")}
    rows = [row for row in collect_results(runs_folder(args)) if (runs_folder(args) / row["run"]) in folders]
    where = "runs trained by this lesson"
rows.sort(key=lambda r: (r["train"], r["depth"]))
table(f"test accuracy ({where})", ["depth", "trained", "epochs", "train images", "final test acc", "paper (approx.)"],
      [[r["depth"], r["train"], r["epochs"], r["train_images"], f"{r['final_test_acc']:.1%}",
        PAPER.get(r["train"], {}).get(r["depth"], "")] for r in rows])
show(plot_accuracy_vs_depth(rows, args.out / "accuracy_vs_depth.png"))
bn_only = [f"ResNet-{r['depth']} {r['final_test_acc']:.1%}" for r in rows if r["train"] == "bn"]
console.print(f"BN-only here: {', '.join(bn_only)}. Paper, BN-only (160 epochs, full data): ResNet-14 ~48%, "
              "ResNet-110 ~69.5%, ResNet-866 82%.")
