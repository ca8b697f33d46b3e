"""Which implementation each op runs: the textbook op, or a fast version of it. All in this one file.

minibn has three fast paths, switched the same way, one switch each:

    fast path   runs on        what it is                                           switch           default
    fast_cpu    NumPy arrays   ops on the flat layout (minibn/fast_cpu)              MINIBN_FAST_CPU  on
    fast_gpu    CuPy arrays    the flat layout's conv and BatchNorm in few CuPy      MINIBN_FAST_GPU  on
                               calls (minibn/fast_gpu.py)
    kernels     CuPy arrays    hand-written CuPy kernels (minibn/kernels.py)        MINIBN_KERNELS   off

The default rule: a fast path is on by default once it is known to beat the textbook ops on its device.
The flat layout has been measured faster on a CPU (README, Speed). On a GPU at CIFAR size a step is bound
by the host's work per CuPy call, and fast_gpu makes well under half the calls of the textbook ops
(counted: minibn/opcount.py, README); it is plain CuPy, so it is on, while its time on a GPU is still
unmeasured. The kernels are not measured yet, so they are off; when they are on, they take precedence
over fast_gpu. ``use`` (or ``use_fast_cpu``/``use_fast_gpu``/``use_kernels``), the environment variables,
and the ``--fast-cpu``/``--fast-gpu``/``--kernels`` flags of the commands and the lessons set them.

The ops that have a fast version are the functions below, which minibn.functional (and so the layers
of minibn.nn) calls: conv2d, batch_norm, batch_norm_relu, global_avg_pool2d, cross_entropy, and the
SGD update. Each reads the switch for its input's array and picks one Function; the textbook op
(conv.Conv2d, batchnorm.BatchNorm, ...) is the twin that every fast version is tested against.

The flat layout. A fast_cpu or fast_gpu op returns its activation in the flat layout (fast_cpu/layout.py), a
Tensor whose ``layout`` is set (None for an ordinary array). The next op with a flat version takes it
as it is, so a network's activations stay flat from layer to layer; any other op gets it back in
(N, C, H, W) first: Function.apply converts it (tensor.py), so no op ever sees an array it does not
understand. Conv and BatchNorm also bring (N, C, H, W) input into the flat layout, which is where
the recipe's ResNet converts: at the stem, and back at the global average pool.
"""
from __future__ import annotations

import contextlib
import os

import numpy as np

from minibn import backend
from minibn.backend import is_cupy_array


def _from_environment(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value not in ("", "0")


_fast_cpu = _from_environment("MINIBN_FAST_CPU", True)
_kernels = _from_environment("MINIBN_KERNELS", False)
_fast_gpu = _from_environment("MINIBN_FAST_GPU", True)


def use_fast_cpu(enabled: bool) -> None:
    """Switch the fast CPU path (the flat layout's ops on NumPy) on or off."""
    global _fast_cpu
    _fast_cpu = bool(enabled)


def fast_cpu_enabled() -> bool:
    return _fast_cpu


def use_fast_gpu(enabled: bool) -> None:
    """Switch the GPU's flat-layout ops (minibn/fast_gpu.py, on CuPy) on or off."""
    global _fast_gpu
    _fast_gpu = bool(enabled)


def fast_gpu_enabled() -> bool:
    return _fast_gpu


def use_kernels(enabled: bool) -> None:
    """Switch the hand-written CuPy kernels on or off."""
    global _kernels
    _kernels = bool(enabled)


def kernels_enabled() -> bool:
    return _kernels


def settings() -> dict:
    """Every switch of the fast paths, for ``use(**settings)`` to put back (the tests do)."""
    from minibn.fast_cpu.threads import num_threads
    return {"fast_cpu": _fast_cpu, "fast_gpu": _fast_gpu, "kernels": _kernels, "threads": num_threads()}


def use(fast_cpu: bool | None = None, kernels: bool | None = None, threads: int | None = None,
        fast_gpu: bool | None = None) -> None:
    """Set the switches; None leaves one as it is. What the --fast-cpu, --fast-gpu, --kernels and --threads
    flags call."""
    from minibn.fast_cpu.threads import set_num_threads
    if fast_cpu is not None:
        use_fast_cpu(fast_cpu)
    if fast_gpu is not None:
        use_fast_gpu(fast_gpu)
    if kernels is not None:
        use_kernels(kernels)
    if threads is not None:
        set_num_threads(threads)


def flat_for(array) -> bool:
    """True if ops on ``array`` run their flat-layout versions: a NumPy float array, fast_cpu on."""
    return _fast_cpu and isinstance(array, np.ndarray) and array.dtype in (np.float32, np.float64)


def fast_gpu_for(array) -> bool:
    """True if ops on ``array`` run fast_gpu's flat-layout versions: a CuPy float array, fast_gpu on, kernels off."""
    return _fast_gpu and not _kernels and is_cupy_array(array) and array.dtype in (np.float32, np.float64)


KERNEL_DTYPES = (np.float32, np.float64)  # what minibn sends its kernels; tests/test_nvrtc.py compiles each


def kernels_for(array) -> bool:
    """True if ops on ``array`` run their CuPy kernels: a CuPy float32/float64 array, kernels on (any other dtype
    runs the textbook ops, as on fast_gpu)."""
    return _kernels and is_cupy_array(array) and array.dtype in KERNEL_DTYPES


@contextlib.contextmanager
def one_off_shapes():
    """What the fast paths keep for shapes first seen inside the block (fast_gpu's scratch at an evaluation's
    batch size) is given back when it ends, to the device too (CuPy's pool otherwise keeps freed blocks; giving
    them back waits for the device, once per evaluation, where its sums are read anyway)."""
    with gpu_flat.one_off_shapes():
        yield
    if backend.xp().__name__ == "cupy":
        backend.xp().get_default_memory_pool().free_all_blocks()


def kept_bytes() -> int:
    """Device bytes the fast paths keep between calls (fast_gpu's scratch matrices and masks)."""
    return gpu_flat.kept_bytes()


def implementation(module: str) -> str:
    """The file of a module that defines ops, for `minibn info` and `bench --profile`: "minibn.fast_cpu.conv"
    -> "fast_cpu/conv.py" (fast CPU path), "minibn.conv" -> "conv.py" (textbook), "minibn.kernels" -> ..."""
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


def switches() -> list[tuple[str, bool, str]]:
    """(fast path, on, what it covers) for each fast path, for `minibn info`."""
    return [("fast_cpu", _fast_cpu, "NumPy: conv, BatchNorm (+ ReLU + add), pooling on the flat layout"),
            ("fast_gpu", _fast_gpu, "CuPy: conv, BatchNorm (+ ReLU + add), pooling on the flat layout, few calls"),
            ("kernels", _kernels, "CuPy: im2col/col2im, BatchNorm, cross-entropy backward, SGD as single kernels")]


# ---- the ops that have a fast version: each picks one Function -----------------------------------------
def _tensor(x) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)  # the training loop passes plain arrays


def conv2d(x, weight, bias=None, stride: int = 1, padding: int = 0) -> Tensor:
    """F.conv2d: conv.Conv2d, or fast_cpu's flat conv (no bias, padding <= 1), or kernels' Conv2dKernels,
    or fast_gpu's flat conv (no bias, 1x1 or 3x3, padding k // 2)."""
    x = _tensor(x)
    if flat_for(x.data) and flat_conv.has_flat_version(weight.shape, bias, padding):
        return flat_conv.conv2d(flat_layout.flat(x), weight, stride, padding)
    if kernels_for(x.data):
        return kernels.Conv2dKernels.apply(x, weight, *(() if bias is None else (bias,)), stride=stride,
                                           padding=padding)
    if fast_gpu_for(x.data) and gpu_flat.has_gpu_version(weight.shape, bias, stride, padding):
        return gpu_flat.conv2d(flat_layout.flat(x), weight, stride)
    return conv.conv2d(x, weight, bias, stride=stride, padding=padding)


def batch_norm(x, gamma, beta, running_mean, running_var, training: bool, momentum: float = 0.1,
               eps: float = 1e-5) -> Tensor:
    """F.batch_norm: batchnorm.BatchNorm, or fast_cpu's BatchNormFlat, or fast_gpu's BatchNormFlatGPU, or
    kernels' BatchNormKernels."""
    return batch_norm_relu(x, gamma, beta, running_mean, running_var, training, momentum, eps, relu=False)


def batch_norm_relu(x, gamma, beta, running_mean, running_var, training: bool, momentum: float = 0.1,
                    eps: float = 1e-5, residual=None, relu: bool = True) -> Tensor:
    """F.batch_norm_relu: relu(batch_norm(x) + residual), one fused op on the flat layout, else the textbook
    ops one after another (BatchNorm, or BatchNormKernels, then Add and ReLU)."""
    x = _tensor(x)
    options = dict(running_mean=running_mean, running_var=running_var, training=training, momentum=momentum,
                   eps=eps)
    flat_op = flat_bn.BatchNormFlat if flat_for(x.data) else gpu_flat.BatchNormFlatGPU if fast_gpu_for(x.data) \
        else None
    if flat_op is not None and x.ndim == 4:
        x = flat_layout.flat(x)
        inputs = (x, gamma, beta) if residual is None else (x, gamma, beta, flat_layout.flat(residual))
        return flat_layout.keep(flat_op.apply(*inputs, layout=x.layout, relu=relu, **options), x.layout)
    op = kernels.BatchNormKernels if kernels_for(x.data) and training and x.ndim == 4 else batchnorm.BatchNorm
    out = op.apply(x, gamma, beta, **options)
    if residual is not None:
        out = out + residual
    return ops.ReLU.apply(out) if relu else out


def global_avg_pool2d(x) -> Tensor:
    """F.global_avg_pool2d: x.mean(axis=(2, 3)), or fast_cpu's GlobalAvgPoolFlat on flat input (from either
    fast path: it is plain ``xp`` code)."""
    if isinstance(x, Tensor) and x.layout is not None:
        return flat_pool.GlobalAvgPoolFlat.apply(x, layout=x.layout)
    return _tensor(x).mean(axis=(2, 3))


def cross_entropy_op(logits: Tensor):
    """The Function F.cross_entropy applies: functional.CrossEntropy, or its kernels twin."""
    return kernels.CrossEntropyKernels if kernels_for(_tensor(logits).data) else functional.CrossEntropy


def sgd_update(array, momentum: float):
    """The update SGD.step applies to a parameter: optim.sgd_update, or its one-launch CuPy twin."""
    return kernels.sgd_update if momentum and kernels_for(array) else optim.sgd_update


# The op modules import this one (functional.py, optim.py), so they are imported last, as tensor.py does.
from minibn import batchnorm, conv, functional, kernels, ops, optim  # noqa: E402
from minibn import fast_gpu as gpu_flat  # noqa: E402
from minibn.fast_cpu import batchnorm as flat_bn  # noqa: E402
from minibn.fast_cpu import conv as flat_conv  # noqa: E402
from minibn.fast_cpu import layout as flat_layout  # noqa: E402
from minibn.fast_cpu import pool as flat_pool  # noqa: E402
from minibn.tensor import Tensor, profiler  # noqa: E402
