"""Saving and loading arrays (a model's state_dict): .npz files, written atomically, read without pickle.

    minibn.save(model.state_dict(), "resnet20.npz")
    model.load_state_dict(minibn.load("resnet20.npz"))

as torch.save and torch.load (PyTorch's are in torch/serialization.py too).
"""
from __future__ import annotations

import os

import numpy as np

from minibn import backend
from minibn.files import atomic_write


def save(arrays: dict[str, np.ndarray], path: str) -> None:
    """Write a dict of arrays to ``path`` as .npz, atomically (a crash leaves the old file whole)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    host_arrays = {k: backend.to_host(v) for k, v in arrays.items()}
    atomic_write(path, lambda file: np.savez(file, **host_arrays))


def load(path: str) -> dict[str, np.ndarray]:
    """Read a .npz written by ``save``. Pickled objects are refused (allow_pickle=False)."""
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}
