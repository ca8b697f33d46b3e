# %%
"""Lesson 08: training a ResNet on CIFAR-10
========================================

What you learn: the whole training loop of minibn/train.py: augmented batches made on the device,
SGD with momentum and weight decay, a step schedule, evaluation with running BN statistics, logs
and checkpoints. Here everything trains (mode `all`); the next lessons freeze the weights.

Run::

    python lessons/08_training.py                      (ResNet-8, 1,000 images, 8 epochs: 15 s on 2 cores)
    python lessons/08_training.py --depth 20 --epochs 30 --subset 0 --test-subset 0   (hours on a CPU)
    minibn train --backend cupy --depth 20 --train all                                 (the real thing)

Look: out/08_training/augmentation.png (what the network sees) and out/08_training/curves.png.
"""
# %%
import json

import numpy as np
from common import console, lesson_args, plt, save, show, table
from training_helpers import add_training_arguments, dataset, smoke, train_run

from minibn import to_host
from minibn.analysis import plot_curves, read_metrics
from minibn.data import CLASSES, MEAN, STD, CifarLoader

args = lesson_args("08_training", __doc__, add_training_arguments)
if args.smoke:
    smoke(args)
data = dataset(args)

# %% [markdown]
# What the network sees: each row is one training image, then seven draws of its augmentation, a
# random crop of the 4-padded image (black borders show the shift) and a coin-flip mirror. The
# batches are normalized; that is undone here for display.
# %%
fig, axes = plt.subplots(2, 8, figsize=(12, 3.4))
for row, k in enumerate((0, 1)):
    loader = CifarLoader(np.repeat(data.x_train[k:k + 1], 7, axis=0), np.repeat(data.y_train[k:k + 1], 7),
                         batch_size=7, train=True, seed=row + 1)
    images, _ = next(loader.epoch(0))
    pixels = to_host(images) * np.array(STD)[:, None, None] + np.array(MEAN)[:, None, None]
    axes[row, 0].imshow(data.x_train[k].transpose(1, 2, 0))
    axes[row, 0].set_title(f"original: {CLASSES[data.y_train[k]]}", fontsize=8)
    for i in range(7):
        axes[row, i + 1].imshow(np.clip(pixels[i].transpose(1, 2, 0), 0, 1))
        axes[row, i + 1].set_title(f"draw {i + 1}", fontsize=8)
for ax in axes.flat:
    ax.axis("off")
save(fig, args.out, "augmentation.png")

# %% [markdown]
# Train. The learning rate drops x0.1 at 50% and 75% of the run, as in the paper (epochs 80 and 120
# of 160).
# %%
run_folder = train_run(args, data, "all")
summary = json.loads((run_folder / "summary.json").read_text())
records = read_metrics(run_folder)
table("per epoch", ["epoch", "lr", "train loss", "train acc", "test acc", "images/s"],
      [[r["epoch"], r["lr"], r["train_loss"], f"{r['train_acc']:.1%}", f"{r['test_acc']:.1%}", r["images_per_s"]]
       for r in records])
show(plot_curves([run_folder], args.out / "curves.png"))
console.print(f"Chance is 10%. Final test accuracy: {summary['final_test_acc']:.1%} after {args.epochs} epochs "
              f"on {len(data.subset(args.subset or None).x_train)} images.")
