"""Batches of CIFAR-10 made on the backend's device: shuffled, cropped, flipped, normalized.

The uint8 images go to the device once (zero-padded by 4 pixels for the random
crops). Each epoch draws its shuffle, crop offsets and flips from a generator
seeded by (seed, epoch), so a run resumed at any step sees the same batches.
A batch is then a single gather from the padded images, plus normalization.
"""
from __future__ import annotations

import numpy as np

from minibn import backend

# The recipe normalizes with ImageNet statistics, as OpenLTH does.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
PAD = 4


class CifarLoader:
    """Iterate over (images float32 (B, 3, 32, 32), labels int64 (B,)) device arrays.

    ``train=True``: reshuffle every epoch and augment (random crop of the 4-padded
    image and horizontal flip, a fresh draw per image). ``train=False``: fixed order,
    no augmentation. The last, smaller batch is kept.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, batch_size: int, train: bool, seed: int = 0):
        xp = backend.xp()
        if train:
            images = np.pad(images, ((0, 0), (0, 0), (PAD, PAD), (PAD, PAD)))
        self.images = backend.to_device(images)  # uint8 on the device, uploaded once
        self.labels = backend.to_device(labels.astype(np.int64))
        self.batch_size, self.train, self.seed = batch_size, train, seed
        self.scale = xp.asarray([1 / (255 * s) for s in STD], dtype=np.float32).reshape(1, 3, 1, 1)
        self.shift = xp.asarray([m / s for m, s in zip(MEAN, STD)], dtype=np.float32).reshape(1, 3, 1, 1)
        # index constants for the crop-and-flip gather, made once rather than per batch
        self.pixels, self.mirrored, self.channels = xp.arange(32), 31 - xp.arange(32), xp.arange(3)[None, :, None, None]

    def __len__(self) -> int:
        return -(-len(self.labels) // self.batch_size)

    @property
    def num_images(self) -> int:
        return len(self.labels)

    def epoch(self, epoch: int = 0, start_step: int = 0):
        """Yield the batches of ``epoch``, from batch ``start_step`` on (to resume mid-epoch)."""
        xp, n = backend.xp(), self.num_images
        if self.train:
            rng = np.random.default_rng([self.seed, epoch])
            order = backend.to_device(rng.permutation(n))
            offsets = backend.to_device(rng.integers(0, 2 * PAD + 1, size=(n, 2)))
            flips = backend.to_device(rng.random(n) < 0.5)
        for step in range(start_step, len(self)):
            batch = slice(step * self.batch_size, (step + 1) * self.batch_size)
            if not self.train:
                yield self.normalize(self.images[batch]), self.labels[batch]
                continue
            index = order[batch]
            rows = offsets[batch, 0:1] + self.pixels                                   # (B, 32)
            cols = offsets[batch, 1:2] + xp.where(flips[batch, None], self.mirrored, self.pixels)
            crops = self.images[index[:, None, None, None], self.channels,
                                rows[:, None, :, None], cols[:, None, None, :]]       # (B, 3, 32, 32)
            yield self.normalize(crops), self.labels[index]

    def normalize(self, images_uint8):
        """(x / 255 - mean) / std per channel, in float32."""
        return images_uint8.astype(np.float32) * self.scale - self.shift
