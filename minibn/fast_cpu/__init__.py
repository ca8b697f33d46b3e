"""The fast CPU path: the ops of a CIFAR ResNet on a flat layout, written for NumPy's speed.

The CPU counterpart of minibn/kernels.py. minibn/fast.py picks these ops, op by op, for NumPy
arrays while the path is on (the default; ``use_fast_cpu(False)`` or MINIBN_FAST_CPU=0 switches it
off), and the textbook ops (conv.py, batchnorm.py) are their twins and oracles: tests/test_fast_cpu.py
checks forward and every gradient against them in float64. What makes it fast, each explained where
it is used:
- layout.py     a padded, channel-major "flat" layout in which each 3x3 kernel offset is one slice,
                and the conversions to and from it (ToFlat, FromFlat);
- conv.py       im2col one cache-sized chunk at a time, no col2im, no columns kept for frozen weights;
- batchnorm.py  BatchNorm, ReLU and the residual add as one op on per-channel coefficients;
- pool.py       global average pooling, where a network leaves the flat layout;
- threads.py    Python threads, one per core, each with single-threaded BLAS;
- buffers.py    arrays reused from step to step.
layout.py and pool.py are plain ``xp`` code: minibn/fast_gpu.py uses them on CuPy too.
"""
from __future__ import annotations

from minibn.fast import fast_cpu_enabled, use_fast_cpu  # the switch, kept here under its old names
from minibn.fast_cpu.threads import num_threads, set_num_threads

__all__ = ["use_fast_cpu", "fast_cpu_enabled", "num_threads", "set_num_threads"]
