"""Training helpers shared by lessons 08-11: the data, and one small run through minibn.train."""
from __future__ import annotations

from pathlib import Path

from common import console

from minibn.data import find_cifar10, load_cifar10, load_sample
from minibn.train import TrainConfig, run


def add_training_arguments(parser, depth=8, epochs=8, subset=1000, test_subset=500) -> None:
    parser.add_argument("--data-dir", default=None, help="folder with cifar-10-batches-py (else the sample)")
    parser.add_argument("--depth", type=int, default=depth)
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--subset", type=int, default=subset, help="training images (0: all)")
    parser.add_argument("--test-subset", type=int, default=test_subset, help="test images (0: all)")
    parser.add_argument("--seed", type=int, default=0)


def smoke(args) -> None:
    """Shrink the settings to seconds (used by the tests)."""
    args.depth, args.epochs, args.subset, args.test_subset = 8, 1, 64, 64


def dataset(args):
    """CIFAR-10 where `minibn train` finds it (--data-dir, $MINIBN_DATA, ~/.cache/minibn), else the sample."""
    if find_cifar10(args.data_dir):
        return load_cifar10(args.data_dir, download=False)
    console.print("[yellow]CIFAR-10 not found (--data-dir, $MINIBN_DATA, ~/.cache/minibn): using the bundled "
                  "sample (500 training images); `minibn train --data cifar10` downloads the real one.[/yellow]")
    return load_sample()


def runs_folder(args) -> Path:
    """Beside the lesson's own output folder: lessons/out/runs by default."""
    return args.out.parent / "runs"


def train_run(args, data, mode: str, depth: int | None = None) -> Path:
    """Train one ResNet with the paper's recipe (scaled to --epochs) and return its run folder.

    Runs live in runs_folder(args), shared by lessons 08-11, each named after its settings: a
    finished run with the same settings (all runs are seeded) is reused, an interrupted one resumed.
    """
    depth = depth or args.depth
    out = runs_folder(args) / (f"resnet{depth}-{mode.replace('+', '-')}-e{args.epochs}-n{args.subset}-t{args.test_subset}"
                  f"-seed{args.seed}-{data.source.split('(')[0].strip().replace('/', '_')[-20:]}")
    if not (out / "summary.json").exists():
        config = TrainConfig(depth=depth, train=mode, epochs=args.epochs, seed=args.seed,
                             subset=args.subset or None, test_subset=args.test_subset or None)
        run(config, data, out, resume=(out / "checkpoint.npz").exists(), console=console)
    return out
