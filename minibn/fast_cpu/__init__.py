"""The fast CPU path: the CIFAR ResNet's convolutions and BatchNorms, rewritten for NumPy's speed.

The CPU counterpart of minibn/kernels.py. The textbook ops (conv.py's im2col/col2im,
batchnorm.py) stay what the lessons teach, and they are this path's oracle: tests/test_fast_cpu.py
checks forward and every gradient against them in float64. What makes it fast, each explained
where it is used:
- layout.py   a padded, channel-major "flat" layout in which each 3x3 kernel offset is one slice;
- conv.py     im2col one cache-sized chunk at a time, no col2im, no columns kept for frozen weights;
- batchnorm.py  BatchNorm, ReLU and the residual add as one op on per-channel coefficients;
- threads.py  Python threads, one per core, each with single-threaded BLAS;
- resnet.py   the ResNet's forward on that layout, converting only at the stem and the head.

It is on by default for NumPy arrays; ``use_fast_cpu(False)`` or MINIBN_FAST_CPU=0 switches it off.
"""
from __future__ import annotations

import os

import numpy as np

from minibn.fast_cpu.resnet import resnet_forward
from minibn.fast_cpu.threads import num_threads, set_num_threads

__all__ = ["use_fast_cpu", "fast_cpu_enabled", "enabled_for", "resnet_forward", "num_threads", "set_num_threads"]

_enabled = os.environ.get("MINIBN_FAST_CPU", "1") not in ("", "0")


def use_fast_cpu(enabled: bool) -> None:
    """Switch the fast CPU path on or off (the textbook path is always there)."""
    global _enabled
    _enabled = enabled


def fast_cpu_enabled() -> bool:
    return _enabled


def enabled_for(array) -> bool:
    """True if ``array`` is a NumPy float array and the fast path is on."""
    return _enabled and isinstance(array, np.ndarray) and array.dtype in (np.float32, np.float64)
