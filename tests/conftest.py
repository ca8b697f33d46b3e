"""The suite runs on the backend named by $MINIBN_BACKEND (numpy unless set).

    python -m pytest                                          NumPy (the fast CPU path, as by default)
    MINIBN_BACKEND=cupy python -m pytest                      CuPy on a GPU
    MINIBN_BACKEND=cupy MINIBN_CUPY_STANDIN=1 python -m pytest   CuPy's rules through the strict stand-in of
                                                              tests/standin (no GPU needed; CI does this
                                                              through tests/test_cupy_standin.py)

Every test starts and ends with the session's backend, fast-path switches (minibn/fast/switches.py), profiler and grad
mode, so that a test that changes them cannot leak into the next.
"""
import os
import sys
from pathlib import Path

import numpy as np
import pytest

BACKEND = os.environ.get("MINIBN_BACKEND", "numpy")
STANDIN = BACKEND == "cupy" and os.environ.get("MINIBN_CUPY_STANDIN") == "1"
STANDIN_PATH = Path(__file__).resolve().parent / "standin"

if STANDIN:  # before anything imports cupy; PYTHONPATH carries it into the lessons and CLI subprocesses
    sys.path.insert(0, str(STANDIN_PATH))
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(STANDIN_PATH), os.environ.get("PYTHONPATH")) if p)

import minibn  # noqa: E402
from minibn import autograd, backend, fast  # noqa: E402
from minibn.profiler import profiler  # noqa: E402


def pytest_configure(config):
    try:
        minibn.use_backend(BACKEND)
    except backend.BackendError as why:
        raise pytest.UsageError(f"MINIBN_BACKEND={BACKEND}: {why}. Without a GPU, add MINIBN_CUPY_STANDIN=1 "
                                "to test CuPy's rules through the stand-in in tests/standin") from None


def pytest_report_header(config):
    what = " (the strict stand-in of tests/standin, not a GPU)" if STANDIN else ""
    return f"minibn backend: {backend.backend_name()}{what}"


_SESSION_SWITCHES = None


@pytest.fixture(autouse=True)
def isolate_global_state():
    """Put the session's backend and switches back before and after every test."""
    global _SESSION_SWITCHES
    if _SESSION_SWITCHES is None:
        _SESSION_SWITCHES = (backend.xp(), backend.backend_reason(), fast.settings())

    def restore():
        backend._current, backend._reason = _SESSION_SWITCHES[:2]
        profiler.enabled = False
        autograd._grad_enabled = True
    restore()
    with fast.use(**_SESSION_SWITCHES[2]):  # and the fast paths' switches, put back after the test
        yield
    restore()


def cupy_or_skip():
    """The real CuPy on a working GPU, else skip (hand-written kernels cannot run in the stand-in)."""
    if STANDIN:
        pytest.skip("hand-written CuPy kernels run only on a real GPU, not in the stand-in")
    try:
        return backend._import_cupy()
    except backend.BackendError as why:
        pytest.skip(f"needs a working CuPy: {why}")


def host(array) -> np.ndarray:
    return backend.to_host(array)
