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


INSTALL_HINT = 'install CuPy with its CUDA libraries: pip install "minibn[cuda12]" (CUDA 12) or "minibn[cuda13]"'
HEADERS_HINT = 'pip install "cupy-cuda12x[ctk]" (CUDA 12; "cupy-cuda13x[ctk]" for 13), which "minibn[cuda12]" brings'
# The CUDA libraries CuPy loads while it runs, by the name their files start with.
CUDA_LIBRARIES = {"libcublas": "cuBLAS (matrix multiplies)", "libnvrtc": "NVRTC (compiles CuPy's kernels)",
                  "libcudart": "the CUDA runtime", "libcurand": "cuRAND", "libnvjitlink": "nvJitLink"}
# NVRTC's words when a header CuPy 14 compiles its kernels with (cuda_fp16.h, the runtime headers) is missing
_MISSING_HEADER = re.compile(r"cannot open source file\s+\W?([\w./-]+\.h)|([\w./-]+\.h): No such file", re.I)


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
        raise BackendError(_explain_cuda_error(str(error))) from None
    return cupy


def _explain_cuda_error(whole: str) -> str:
    message = whole.splitlines()[0] if whole else "an unknown CUDA error"
    if header := _MISSING_HEADER.search(whole):
        advice = next((line.strip() for line in whole.splitlines() if "pip install" in line), HEADERS_HINT)
        return (f"CuPy cannot compile its kernels: the CUDA header {header.group(1) or header.group(2)} is missing; "
                f"{advice}; or use --backend numpy")
    for prefix, what in CUDA_LIBRARIES.items():
        if found := re.search(rf"{prefix}[\w.-]*", message.lower()):
            return f"CuPy cannot load {what}: {found.group(0)} is missing; {INSTALL_HINT}; or use --backend numpy"
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
    """Why no CUDA GPU can work here, told in a millisecond without importing CuPy (100 ms): on Linux, the NVIDIA
    driver's libcuda.so.1 does not load. None where a GPU may, elsewhere, or once a CuPy (the stand-in) is in."""
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
