"""Everything in minibn that exists only for speed, and the switches that turn it on.

The core (minibn/*.py) is the textbook: each op once, plainly. This package imports the core, which never
imports it; importing it registers its ops in minibn/registry.py, where F.conv2d, F.batch_norm,
F.batch_norm_relu, F.global_avg_pool2d, F.cross_entropy and SGD's update look before they run their
textbook op. ``import minibn`` imports it, and so do the commands; ``minibn.fast.use(...)`` sets its
switches (switches.py), for good or, as a context manager, for a block.

    file               runs on  what it is                                               textbook twin
    layout.py          both     the flat layout, FlatTensor, ToFlat/FromFlat              (N, C, H, W) arrays
    cpu_conv.py        NumPy    conv on the flat layout, in cache-sized chunks, threads   conv.Conv2d
    cpu_batchnorm.py   NumPy    BatchNorm + residual + ReLU as one op                     batchnorm.BatchNorm
    pool.py            both     global average pooling out of the flat layout             x.mean(axis=(2, 3))
    gpu.py             CuPy     the flat layout's conv and BatchNorm in few calls         conv.Conv2d, BatchNorm
    kernels.py         CuPy     hand-written kernels (off by default)                     Conv2d, BatchNorm, ...
    running_stats.py   CuPy     every BatchNorm's running statistics in one update        update_running_stats
    sgd.py             CuPy     SGD over one packed array per dtype (PackedSGD)           optim.SGD
    threads.py         NumPy    Python threads, one per core, single-threaded BLAS
    buffers.py         NumPy    arrays reused from step to step
    checks.py          both     gradient checks of the ops above, for `minibn gradcheck`

A fast op returns its activation as a FlatTensor (layout.py); the next op with a flat version takes it
as it is, so a network's activations stay flat from layer to layer, and any other op gets it back in
(N, C, H, W) first. Each fast op is tested against its twin in float64 (tests/test_fast_cpu.py,
test_fast_gpu.py, test_kernels.py, test_one_architecture.py).
"""
from __future__ import annotations

import contextlib

import numpy as np

from minibn import backend, ops, registry
from minibn.backend import is_cupy_array
from minibn.fast import checks, cpu_batchnorm, cpu_conv, gpu, kernels, layout, pool, running_stats, sgd
from minibn.fast.switches import Switches, switches, use
from minibn.fast.threads import num_threads, set_num_threads
from minibn.profiler import profiler
from minibn.tensor import Tensor

__all__ = ["use", "switches", "Switches", "settings", "describe", "ops_run", "implementation", "num_threads",
           "set_num_threads"]


# ---- which version runs: each function takes the op's arguments, and returns None for the textbook op ----
def _float(array) -> bool:
    return array.dtype in (np.float32, np.float64)


def fast_cpu_for(array) -> bool:
    """True if ops on ``array`` run the fast CPU path (the flat layout's ops): a NumPy float array, fast_cpu on."""
    return switches.fast_cpu and isinstance(array, np.ndarray) and _float(array)


def fast_gpu_for(array) -> bool:
    """True if ops on ``array`` run gpu.py's ops: a CuPy float array, fast_gpu on, kernels off."""
    return switches.fast_gpu and not switches.kernels and is_cupy_array(array) and _float(array)


KERNEL_DTYPES = (np.float32, np.float64)  # what minibn sends its kernels; tests/test_nvrtc.py compiles each


def kernels_for(array) -> bool:
    """True if ops on ``array`` run the CuPy kernels: a CuPy float32/float64 array, kernels on (any other dtype
    runs the textbook ops, as on fast_gpu)."""
    return switches.kernels and is_cupy_array(array) and array.dtype in KERNEL_DTYPES


def conv2d(x: Tensor, weight, bias, stride: int, padding: int):
    """F.conv2d's fast versions: the CPU flat conv (no bias, padding <= 1), kernels' Conv2dKernels, or the
    GPU flat conv (no bias, 1x1 or 3x3, padding k // 2). Twin: conv.Conv2d."""
    if fast_cpu_for(x.data) and cpu_conv.has_flat_version(weight.shape, bias, padding):
        return cpu_conv.conv2d(layout.flat(x), weight, stride, padding)
    if kernels_for(x.data):
        return kernels.Conv2dKernels.apply(x, weight, *(() if bias is None else (bias,)), stride=stride,
                                           padding=padding)
    if fast_gpu_for(x.data) and gpu.has_gpu_version(weight.shape, bias, stride, padding):
        return gpu.conv2d(layout.flat(x), weight, stride)
    return None


def batch_norm_relu(x: Tensor, gamma, beta, residual=None, relu: bool = True, **options):
    """F.batch_norm_relu's fast versions: one fused op on the flat layout (cpu_batchnorm.BatchNormFlat or
    gpu.BatchNormFlatGPU), or kernels' BatchNormKernels then Add and ReLU. Twin: batchnorm.BatchNorm (+ Add,
    ReLU)."""
    flat_op = cpu_batchnorm.BatchNormFlat if fast_cpu_for(x.data) else gpu.BatchNormFlatGPU if fast_gpu_for(x.data) \
        else None
    if flat_op is not None and x.ndim == 4:
        x = layout.flat(x)
        inputs = (x, gamma, beta) if residual is None else (x, gamma, beta, layout.flat(residual))
        return layout.keep(flat_op.apply(*inputs, layout=x.layout, relu=relu, **options), x.layout)
    if not (kernels_for(x.data) and options["training"] and x.ndim == 4):
        return None
    out = kernels.BatchNormKernels.apply(x, gamma, beta, **options)
    if residual is not None:
        out = out + residual
    return ops.ReLU.apply(out) if relu else out


def global_avg_pool2d(x):
    """F.global_avg_pool2d's fast version, on a FlatTensor (from either flat path: it is plain ``xp`` code)."""
    return pool.GlobalAvgPoolFlat.apply(x, layout=x.layout) if isinstance(x, layout.FlatTensor) else None


def cross_entropy(logits, labels):
    """F.cross_entropy's fast version: kernels' CrossEntropyKernels. Twin: functional.CrossEntropy."""
    return kernels.CrossEntropyKernels.apply(logits, labels=labels) if kernels_for(logits.data) else None


def sgd_update(param, grad, mask, buffer, first: bool, lr: float, momentum: float, weight_decay: float):
    """SGD's update in one launch (kernels.sgd_update); True where it ran. Twin: optim.sgd_update."""
    if not (momentum and kernels_for(param)):
        return None
    kernels.sgd_update(param, grad, mask, buffer, first, lr, momentum, weight_decay)
    return True


def training_optimizer(model, lr: float, momentum: float, weight_decay: float):
    """The optimizer of ``minibn train`` (and bench): with packed_sgd on and the model on CuPy, a PackedSGD,
    with the model's running statistics stacked (running_stats.stack): the opt-in that makes a GPU step a few
    hundred device operations. None elsewhere: optim.SGD."""
    if not (switches.packed_sgd and is_cupy_array(next(model.parameters()).data)):
        return None
    running_stats.stack(model)
    return sgd.PackedSGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)


@contextlib.contextmanager
def one_off_shapes():
    """What the fast paths keep for shapes first seen inside the block (gpu.py's scratch at an evaluation's
    batch size) is given back when it ends, to the device too (CuPy's pool otherwise keeps freed blocks; giving
    them back waits for the device, once per evaluation, where its sums are read anyway)."""
    with gpu.one_off_shapes():
        yield
    if backend.xp().__name__ == "cupy":
        backend.xp().get_default_memory_pool().free_all_blocks()


def kept_bytes() -> int:
    """Device bytes the fast paths keep between calls (gpu.py's scratch matrices and masks)."""
    return gpu.kept_bytes()


registry.fast_versions.update(conv2d=conv2d, batch_norm_relu=batch_norm_relu, global_avg_pool2d=global_avg_pool2d,
                              cross_entropy=cross_entropy, sgd_update=sgd_update, training_optimizer=training_optimizer,
                              one_off_shapes=one_off_shapes, checks=checks.checks_for_this_backend)


# ---- what `minibn info` and `bench --profile` show ----
def settings() -> dict:
    """The switches as a dict (threads read from the environment if not set yet)."""
    num_threads()
    return {"fast_cpu": switches.fast_cpu, "fast_gpu": switches.fast_gpu, "kernels": switches.kernels,
            "packed_sgd": switches.packed_sgd, "threads": switches.threads, "chunk_bytes": switches.chunk_bytes}


def describe() -> list[tuple[str, bool, str]]:
    """(fast path, on, what it covers) for each fast path, for `minibn info`."""
    return [("fast_cpu", switches.fast_cpu, "NumPy: conv, BatchNorm (+ ReLU + add), pooling on the flat layout"),
            ("fast_gpu", switches.fast_gpu, "CuPy: conv, BatchNorm (+ ReLU + add), pooling on the flat layout, "
                                            "few calls"),
            ("kernels", switches.kernels, "CuPy: im2col/col2im, BatchNorm, cross-entropy backward, SGD as single "
                                          "kernels"),
            ("packed_sgd", switches.packed_sgd, "CuPy: the commands' SGD over one packed array, running statistics "
                                            "in one update")]


def implementation(module: str) -> str:
    """The file of a module that defines ops, for `minibn info` and `bench --profile`: "minibn.fast.cpu_conv"
    -> "fast/cpu_conv.py" (fast CPU path), "minibn.conv" -> "conv.py" (textbook)."""
    return module.removeprefix("minibn.").replace(".", "/") + ".py" if module.startswith("minibn.") else module


def ops_run(step) -> list[tuple[str, str, str]]:
    """(op, the file that defines it, "forward"/"backward") for every op that ``step()`` runs, sorted: which
    implementation each op picked. Uses the profiler, so each op is synchronized (a tiny step is best)."""
    was_enabled, profiler.enabled = profiler.enabled, True
    saved, profiler.totals, profiler.modules = (profiler.totals, profiler.modules), {}, {}
    try:
        step()
        phases: dict[str, list[str]] = {}
        for op, phase in profiler.totals:
            phases.setdefault(op, []).append(phase)
        return sorted((op, implementation(profiler.modules[op]), ", ".join(sorted(p))) for op, p in phases.items())
    finally:
        profiler.enabled, (profiler.totals, profiler.modules) = was_enabled, saved
