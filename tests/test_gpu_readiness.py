"""What the first run on a real GPU needs, checked without one: labels out of range, the backend's advice,
BatchNorm's sums outside TF32, launches counted as CuPy launches them (issue 22)."""
import subprocess
import sys
import types

import numpy as np
import pytest

from minibn import Tensor, backend
from minibn.fast import gpu as fast_gpu
from minibn import functional as F
from tests.conftest import STANDIN, host


@pytest.mark.parametrize("label", [-1, 10, 12])
def test_an_out_of_range_label_is_an_error_or_a_nan_loss_never_a_wrong_finite_one(label):
    logits = Tensor(backend.to_device(np.random.default_rng(0).standard_normal((3, 10))), requires_grad=True)
    labels = backend.to_device(np.array([1, label, 2]))
    try:
        loss = F.cross_entropy(logits, labels)
        loss.backward()
    except (IndexError, ValueError):
        return  # NumPy raises for a label >= K
    assert np.isnan(host(loss.data)), f"label {label} of 10 classes gave the finite loss {host(loss.data)}"
    grad = host(logits.grad)
    assert np.isnan(grad[1]).all() and np.isfinite(grad[[0, 2]]).all()


def test_labels_in_range_give_the_textbook_loss():
    rng = np.random.default_rng(1)
    z, labels = rng.standard_normal((4, 5)), np.array([0, 4, 2, 2])
    log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    loss = F.cross_entropy(Tensor(backend.to_device(z)), backend.to_device(labels))
    np.testing.assert_allclose(host(loss.data), -log_probs[np.arange(4), labels].mean(), rtol=1e-12)


def test_auto_without_an_nvidia_driver_picks_numpy_without_importing_cupy():
    code = ("import ctypes, sys\n"
            "def no_library(name, *a, **k): raise OSError(name + ': cannot open shared object file')\n"
            "ctypes.CDLL = no_library\n"
            "import minibn\n"
            "module = minibn.use_backend('auto')\n"
            "print(module.__name__, 'cupy' in sys.modules, minibn.backend.backend_reason())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("numpy False") and "libcuda.so.1" in out, out


def test_missing_cuda_headers_get_cupys_ctk_advice(monkeypatch):
    """CuPy 14 compiles its kernels with the CUDA headers; a wheel installed without [ctk] lacks them."""
    from tests.standin import cupy as standin

    def fails(self, other):
        # what CuPy 14.2's NVRTC says without nvidia-cuda-runtime-cu12's headers (reproduced without a GPU)
        raise RuntimeError('/site-packages/cupy/_core/include/cupy/float16.cuh(19): catastrophic error: cannot open '
                           'source file "cuda_fp16.h"\n  #include <cuda_fp16.h>\n\n1 catastrophic error detected '
                           'in the compilation of "kern.cu".\nCompilation terminated.')
    monkeypatch.setitem(sys.modules, "cupy", standin)
    monkeypatch.setattr(standin.ndarray, "__add__", fails)
    with pytest.raises(backend.BackendError) as error:
        backend.use_backend("cupy")
    message = str(error.value)
    assert "cuda_fp16.h" in message and 'cupy-cuda12x[ctk]' in message and "no usable CUDA device" not in message
    assert "\n" not in message


def test_batch_norm_sums_run_in_float32_even_under_tf32():
    """`bench --math tf32` sets CUPY_TF32=1; PyTorch's BatchNorm sums in FP32 whatever its TF32 switches."""
    seen = []
    linalg = types.SimpleNamespace(COMPUTE_TYPE_FP32="fp32", COMPUTE_TYPE_TF32="tf32", mode={np.float32: "tf32"})
    linalg.get_compute_type = lambda dtype: linalg.mode[dtype]
    linalg.set_compute_type = lambda dtype, mode: linalg.mode.__setitem__(dtype, mode)
    fake_cupy = types.SimpleNamespace(_core=types.SimpleNamespace(_routines_linalg=linalg))
    with fast_gpu.float32_sums(fake_cupy):
        seen.append(linalg.mode[np.float32])
    seen.append(linalg.mode[np.float32])
    assert seen == ["fp32", "tf32"]
    with fast_gpu.float32_sums(np):  # NumPy has no such setting: nothing to do
        pass


@pytest.mark.skipif(not STANDIN, reason="counts launches with the CuPy stand-in (run by tests/test_cupy_standin.py)")
def test_a_gather_counts_the_kernels_cupy_launches():
    """cupy/_core/_routines_indexing.pyx: one index array is one take; k >= 2 are a fill, k index kernels and the
    take (k + 2); and CuPy wraps an index out of range, which the stand-in does as well."""
    cupy = backend.xp()
    x, rows, cols = cupy.arange(12.0).reshape(3, 4), cupy.asarray([0, 2]), cupy.asarray([1, 5])
    with cupy.count_ops() as one:
        x[rows]
    with cupy.count_ops() as two:
        picked = x[rows, cols]
    with cupy.count_ops() as scatter:
        x[rows, cols] = 0.0
    assert (one.total, two.total, scatter.total) == (1, 4, 4)
    assert host(picked).tolist() == [1.0, 9.0]  # column 5 of 4 wraps to 1
