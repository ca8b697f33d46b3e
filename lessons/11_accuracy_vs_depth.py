"""Lesson 11: accuracy versus depth, with the paper's numbers beside ours.

What you learn: in the paper, BN-only accuracy grows with depth (a deeper net has more random
features for BatchNorm to choose from) while full training saturates early. This lesson reads the
results of `minibn sweep` (or runs a tiny sweep itself) and plots them next to the paper's. Short
runs on few images do not show the growth yet; the 160-epoch series does.
Run:   python lessons/11_accuracy_vs_depth.py                          (a tiny sweep: minutes)
       python lessons/11_accuracy_vs_depth.py --results runs/sweep-cpu (a finished sweep's results)
       minibn sweep --depths 14,32,56,110 --modes bn,all --epochs 160 --out runs/paper   (the real one)
Look:  out/11_depth/accuracy_vs_depth.png and the table.
"""
# %%
from pathlib import Path

from common import console, lesson_args, table
from training_helpers import add_training_arguments, dataset, runs_folder, smoke, train_run

from minibn.analysis import PAPER, collect_results, plot_accuracy_vs_depth

args = lesson_args("11_depth", __doc__, lambda p: (add_training_arguments(p),
                                                  p.add_argument("--depths", default="8,14"),
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
figure = plot_accuracy_vs_depth(rows, args.out / "accuracy_vs_depth.png")
console.print(f"figure: {figure}")
console.print("Paper, BN-only (160 epochs, full data): ResNet-14 ~48%, ResNet-110 ~69.5%, ResNet-866 82%.")
