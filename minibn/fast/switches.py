"""The switches of the fast paths, all in one object, and ``use``, which sets them and can put them back.

    switch        what it turns on                                              environment       default
    fast_cpu      NumPy: conv, BatchNorm (+ ReLU + add), pooling on the flat     MINIBN_FAST_CPU   on
                  layout (cpu_conv.py, cpu_batchnorm.py, pool.py)
    fast_gpu      CuPy: the flat layout's conv and BatchNorm in few calls        MINIBN_FAST_GPU   on
                  (gpu.py)
    kernels       CuPy: hand-written kernels (kernels.py); before fast_gpu       MINIBN_KERNELS    off
    packed_sgd    CuPy: minibn train's optimizer keeps every parameter and      MINIBN_PACKED_SGD on
                  gradient in one packed array (sgd.py), running statistics
                  stacked (running_stats.py); plain SGD elsewhere
    threads       threads of the fast CPU path (threads.py)                      MINIBN_THREADS    the cores
    chunk_bytes   bytes of im2col columns per chunk of the CPU conv (cpu_conv.py)                   2 MiB

The default rule: a fast path is on by default once it is known to beat the textbook ops on its device
(lessons/guide/speed.md). The kernels are not measured yet, so they are off.

    minibn.fast.use(kernels=True)              sets a switch (None leaves one as it is)
    with minibn.fast.use(fast_cpu=False):      sets it for the block, then puts every switch back
"""
from __future__ import annotations

import dataclasses
import os


def _from_environment(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value not in ("", "0")


@dataclasses.dataclass
class Switches:
    fast_cpu: bool = dataclasses.field(default_factory=lambda: _from_environment("MINIBN_FAST_CPU", True))
    fast_gpu: bool = dataclasses.field(default_factory=lambda: _from_environment("MINIBN_FAST_GPU", True))
    kernels: bool = dataclasses.field(default_factory=lambda: _from_environment("MINIBN_KERNELS", False))
    packed_sgd: bool = dataclasses.field(default_factory=lambda: _from_environment("MINIBN_PACKED_SGD", True))
    threads: int | None = None  # None: $MINIBN_THREADS or the cores, read on first use (threads.py)
    chunk_bytes: int = 2 << 20  # 2 MiB, tuned on a 2-core Xeon with 2 MiB of L2 per core


switches = Switches()


class use:
    """Set the switches named (None leaves one as it is); as a context manager, put all of them back after.
    What the --fast-cpu, --fast-gpu, --kernels and --threads flags call."""

    def __init__(self, fast_cpu: bool | None = None, kernels: bool | None = None, threads: int | None = None,
                 fast_gpu: bool | None = None, packed_sgd: bool | None = None, chunk_bytes: int | None = None):
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        if chunk_bytes is not None and chunk_bytes < 1:
            raise ValueError(f"chunk_bytes must be at least 1, got {chunk_bytes}")
        self.saved = dataclasses.replace(switches)
        changes = dict(fast_cpu=fast_cpu, kernels=kernels, threads=threads, fast_gpu=fast_gpu, packed_sgd=packed_sgd,
                       chunk_bytes=chunk_bytes)
        for name, value in changes.items():
            if value is not None:
                setattr(switches, name, int(value) if name in ("threads", "chunk_bytes") else bool(value))

    def __enter__(self) -> Switches:
        return switches

    def __exit__(self, *exc) -> None:
        for field in dataclasses.fields(Switches):
            setattr(switches, field.name, getattr(self.saved, field.name))
