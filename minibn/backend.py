"""Which array library minibn computes with: NumPy on the CPU, CuPy on a GPU.

Every op is written once against ``xp``, the array module of its inputs
(``array_module(x)``), so the same code runs on both. CuPy is imported lazily,
only when asked for, so ``import minibn`` never needs it.
"""
from __future__ import annotations

import ctypes
import os
import re
import sys
from types import ModuleType

import numpy as np

BACKENDS = ("auto", "numpy", "cupy")


class BackendError(RuntimeError):
    """The requested backend cannot run here; the message says why and what to do."""


_current: ModuleType | None = None  # resolved on first use, so importing minibn imports no CuPy
_reason = ""


INSTALL_HINT = ('install CuPy with its CUDA libraries: pip install "minibn[cuda12]" (CUDA 12) '
                'or "minibn[cuda13]" (CUDA 13)')

# The CUDA libraries CuPy loads while it runs, by the name their files start with.
CUDA_LIBRARIES = {"libcublas": "cuBLAS (matrix multiplies)", "libnvrtc": "NVRTC (compiles CuPy's kernels)",
                  "libcudart": "the CUDA runtime", "libcurand": "cuRAND", "libnvjitlink": "nvJitLink"}


def _import_cupy() -> ModuleType:
    """Import CuPy and check that a CUDA device computes, or raise BackendError."""
    try:
        import cupy
    except ImportError as error:
        raise BackendError(f"CuPy is not installed ({error}); {INSTALL_HINT}") from None
    try:
        if cupy.cuda.runtime.getDeviceCount() == 0:
            raise BackendError("CuPy is installed but sees no CUDA device; use --backend numpy")
        # One tiny float32 matmul (cuBLAS) and elementwise op (a kernel NVRTC compiles): a library
        # that is missing, or a driver that does not match, shows here and not at the first training step.
        a = cupy.ones((4, 4), dtype=cupy.float32)
        ((a @ a) + 1).sum().item()
    except BackendError:
        raise
    except Exception as error:  # CUDA errors come in many classes
        raise BackendError(_explain_cuda_error(error)) from None
    return cupy


HEADERS_HINT = ('install CuPy with the CUDA headers it compiles its kernels with: pip install "cupy-cuda12x[ctk]" '
                '(CUDA 12; "cupy-cuda13x[ctk]" for CUDA 13), which "minibn[cuda12]" brings')
# NVRTC's words when a header CuPy's kernels include (cuda_fp16.h, and the runtime headers it needs) is missing
_MISSING_HEADER = re.compile(r"cannot open source file\s+\W?([\w./-]+\.h)|([\w./-]+\.h): No such file", re.I)


def _explain_cuda_error(error: Exception) -> str:
    whole = str(error)
    message = whole.splitlines()[0] if whole else type(error).__name__
    header = _MISSING_HEADER.search(whole)
    if header:  # CuPy 14 compiles with the CUDA headers of the toolkit or of PyPI's wheels; without them, this
        advice = next((line.strip() for line in whole.splitlines() if "pip install" in line), "")
        return (f"CuPy cannot compile its kernels: the CUDA header {header.group(1) or header.group(2)} is missing; "
                f"{advice or HEADERS_HINT}; or use --backend numpy")
    for prefix, what in CUDA_LIBRARIES.items():
        found = re.search(rf"{prefix}[\w.-]*", message.lower())
        if found:
            return (f"CuPy cannot load {what}: {found.group(0)} is missing; {INSTALL_HINT}, or the CUDA "
                    "Toolkit; or use --backend numpy")
    return f"CuPy is installed but no usable CUDA device was found ({message}); use --backend numpy"


def use_backend(name: str | None = None) -> ModuleType:
    """Select the array library: "numpy", "cupy" or "auto" (CuPy if a GPU works, else NumPy).

    With no name, $MINIBN_BACKEND is used, and "numpy" if that is unset (like PyTorch,
    the library computes on the CPU unless told otherwise; the CLI defaults to "auto").
    Returns the chosen module. Raises BackendError if "cupy" cannot run here.
    """
    global _current, _reason
    name = (name or os.environ.get("MINIBN_BACKEND") or "numpy").lower()
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if name == "numpy":
        _current, _reason = np, "asked for numpy"
    elif name == "cupy":
        _current, _reason = _import_cupy(), "asked for cupy"
    elif (no_driver := _no_cuda_driver()) is not None:
        _current, _reason = np, f"auto: fell back to NumPy because {no_driver}"
    else:
        try:
            _current, _reason = _import_cupy(), "auto: CuPy imports and a CUDA device works"
        except BackendError as why:
            _current, _reason = np, f"auto: fell back to NumPy because {why}"
    return _current


def _no_cuda_driver() -> str | None:
    """Why no CUDA GPU can work here, found in about a millisecond without importing CuPy (about 100 ms): on
    Linux, the NVIDIA driver's libcuda.so.1 cannot be loaded (CuPy's CUDA runtime loads the same file). None
    where a GPU may work, on other systems, or where a CuPy (the tests' stand-in) is already imported."""
    if sys.platform != "linux" or "cupy" in sys.modules:
        return None
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        return "no NVIDIA driver is installed (libcuda.so.1 cannot be loaded)"
    return None


def xp() -> ModuleType:
    """The array module of the current backend (numpy or cupy)."""
    if _current is None:
        use_backend()
    return _current


def backend_name() -> str:
    return xp().__name__


def backend_reason() -> str:
    return _reason


def is_cupy_array(array) -> bool:
    return type(array).__module__.startswith("cupy")


def array_module(array) -> ModuleType:
    """numpy or cupy, whichever owns ``array`` (Chainer's get_array_module)."""
    if is_cupy_array(array):
        import cupy
        return cupy
    return np


def to_device(array, dtype=None):
    """Copy a host (or device) array to the current backend."""
    return xp().asarray(array, dtype=dtype)


def to_host(array) -> np.ndarray:
    """A NumPy copy of ``array`` (a no-op view for NumPy arrays)."""
    if is_cupy_array(array):
        return array.get()
    return np.asarray(array)


def synchronize() -> None:
    """Wait for the GPU to finish queued work (no-op on NumPy). Needed before reading a clock."""
    if xp() is not np:
        _current.cuda.get_current_stream().synchronize()


def manual_seed(seed: int) -> None:
    """Seed the backend's global random generator (NumPy's legacy one, and CuPy's if active)."""
    np.random.seed(seed)
    if xp() is not np:
        _current.random.seed(seed)


def device_description() -> dict:
    """Name and memory of the current device, for `minibn info` and benchmarks."""
    if xp() is np:
        return {"device": _cpu_name(), "cores": os.cpu_count()}
    cupy = _current
    device = cupy.cuda.Device()
    props = cupy.cuda.runtime.getDeviceProperties(device.id)
    free, total = device.mem_info
    return {"device": props["name"].decode(), "memory_gib": round(total / 2**30, 1),
            "free_gib": round(free / 2**30, 1), "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion()}


def _cpu_name() -> str:
    """The processor's model name (from /proc/cpuinfo on Linux), else the machine type."""
    import platform
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
