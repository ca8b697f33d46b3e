"""CuPy's rules on every CI run, without a GPU: the strict stand-in, and the suite run through it.

The stand-in (tests/standin) is checked first: it must refuse what CuPy refuses and count what
makes the host wait. Then the backend-agnostic suite (every lesson's --smoke, `minibn train` with
resume, gradcheck, bench, the host-sync counts...) runs in a child pytest on it.
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from minibn import backend
from tests.conftest import BACKEND, STANDIN_PATH
from tests.standin import cupy as standin

TESTS = Path(__file__).resolve().parent


def test_standin_refuses_implicit_conversion_to_numpy():
    a = standin.asarray(np.arange(6.0).reshape(2, 3))
    for convert in (np.asarray, np.array, lambda x: np.maximum([x.sum(), x.sum()], 0)):
        with pytest.raises(TypeError, match="Implicit conversion"):
            convert(a)


def test_standin_refuses_host_arrays_mixed_with_device_arrays():
    a = standin.asarray(np.ones((2, 3)))
    for mix in (lambda: a + np.ones(3), lambda: np.ones(3) * a, lambda: standin.maximum(a, np.zeros(3)),
                lambda: a * np.array(2.0), lambda: a.__setitem__(..., np.zeros((2, 3)))):
        with pytest.raises(TypeError, match="Unsupported type"):
            mix()
    assert isinstance(a * np.float32(2) + 1, standin.ndarray)  # NumPy and Python scalars are fine


def test_standin_gives_device_scalars_and_counts_syncs():
    a = standin.asarray(np.arange(6.0).reshape(2, 3))
    start = standin.sync_count()
    total, element = a.sum(), a[1, 2]
    assert isinstance(total, standin.ndarray) and total.shape == () and element.shape == ()
    assert standin.sync_count() == start
    float(total), total.item(), a.get(), bool(total > 0), a[a > 2], f"{element:.1f}"
    assert standin.sync_count() == start + 6
    assert "test_cupy_standin.py" in standin.sync_log()[-1]


def test_standin_counts_device_operations_but_not_views():
    a = standin.asarray(np.arange(12.0).reshape(3, 4))
    with standin.count_ops() as ops:
        a.reshape(4, 3), a.T, a[1:, ::2], standin.transpose(a), a.astype(np.float64, copy=False)  # views
    assert ops.total == 0
    with standin.count_ops() as ops, standin.op_label("mine"):
        b = a * 2                      # a ufunc
        b += a                         # an in-place one
        a.sum(axis=0)                  # a reduction
        a @ a.T                        # a GEMM
        standin.zeros((2, 2))          # an allocation
        a[:, 1:] = 0                   # an assignment
        a[[0, 2]]                      # a gather: the list's copy to the device, and one take
        a.T.reshape(12)                # a reshape that must copy
        standin.ascontiguousarray(a.T)
        a.astype(np.float32)
        standin.clip(b, 0, 1, out=b)   # in place: still an operation
    assert ops.total == 12 and ops.by_label == {"mine": 12}
    assert ops.by_kind["gather"] == 2 and ops.by_kind["matmul"] == 1 and ops.by_kind["setitem"] == 1
    out = standin.zeros(4)
    assert a.sum(axis=0, out=out) is out and standin.sum(a, axis=0, out=out) is out  # out= gives it back, as CuPy


def test_standin_cannot_run_hand_written_kernels():
    with pytest.raises(NotImplementedError, match="real GPU"):
        standin.ElementwiseKernel("T x", "T y", "y = x", "copy")


def real_cupy_works() -> bool:
    try:
        backend._import_cupy()
        return True
    except backend.BackendError:
        return False


@pytest.mark.skipif(BACKEND == "cupy", reason="this run is already on CuPy")
def test_backend_agnostic_suite_passes_on_the_cupy_standin():
    if real_cupy_works():
        pytest.skip("a real CuPy works here: run MINIBN_BACKEND=cupy python -m pytest instead")
    env = {**os.environ, "MINIBN_BACKEND": "cupy", "MINIBN_CUPY_STANDIN": "1"}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--tb=short", str(TESTS)],
                            capture_output=True, text=True, env=env, timeout=900, cwd=TESTS.parent)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, f"on the CuPy stand-in ({STANDIN_PATH}): {summary}\n{result.stdout[-6000:]}" \
                                   f"{result.stderr[-2000:]}"
    assert " passed" in summary and "failed" not in summary
