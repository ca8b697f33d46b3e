"""A tiny CIFAR-10 look-alike in the official layout, for tests that must not need the real one."""
from pathlib import Path

import numpy as np

from minibn.data import write_batch
from minibn.data.cifar import FOLDER, TEST_FILE, TRAIN_FILES


def make_fake_cifar(root: Path, per_batch: int = 40, seed: int = 0) -> Path:
    """Write root/cifar-10-batches-py with 5 x ``per_batch`` training and ``per_batch`` test images.

    The classes are learnable: each class has its own mean colour.
    """
    rng = np.random.default_rng(seed)
    folder = root / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    for name in TRAIN_FILES + [TEST_FILE]:
        labels = rng.integers(0, 10, per_batch)
        images = rng.integers(0, 100, (per_batch, 3, 32, 32)) + (labels * 15)[:, None, None, None]
        write_batch(folder / name, images.astype(np.uint8), labels)
    return folder
