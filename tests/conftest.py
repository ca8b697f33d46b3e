"""Tests run on the backend named by $MINIBN_BACKEND (numpy unless set), so the same suite
checks CuPy on a GPU machine: MINIBN_BACKEND=cupy python -m pytest."""
import os

import numpy as np
import pytest

import minibn
from minibn import backend


def pytest_configure(config):
    minibn.use_backend(os.environ.get("MINIBN_BACKEND", "numpy"))


@pytest.fixture(autouse=True)
def restore_backend():
    """Tests that switch the backend (the missing-CuPy test) must not leak it into others."""
    chosen = backend.xp()
    yield
    backend._current = chosen


def cupy_or_skip():
    try:
        return backend._import_cupy()
    except backend.BackendError as why:
        pytest.skip(f"needs a working CuPy: {why}")


def host(array) -> np.ndarray:
    return backend.to_host(array)
