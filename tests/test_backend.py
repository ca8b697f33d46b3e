"""Backend selection: lazy CuPy, clear errors, auto fallback."""
import subprocess
import sys

import pytest

from minibn import backend


def test_import_minibn_does_not_import_cupy():
    code = "import sys, minibn, minibn.nn, minibn.models; print('cupy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_missing_cupy_is_a_one_line_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # makes `import cupy` raise ImportError
    with pytest.raises(backend.BackendError) as error:
        backend.use_backend("cupy")
    message = str(error.value)
    assert "not installed" in message and 'pip install "minibn[cuda12]"' in message and "\n" not in message


def test_auto_falls_back_to_numpy_without_cupy(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)
    import numpy as np
    assert backend.use_backend("auto") is np
    assert "fell back to NumPy" in backend.backend_reason()


def test_unknown_backend(monkeypatch):
    with pytest.raises(backend.BackendError, match="unknown backend"):
        backend.use_backend("tpu")


def test_env_var_selects_backend(monkeypatch):
    import numpy as np
    monkeypatch.setenv("MINIBN_BACKEND", "numpy")
    assert backend.use_backend() is np


def test_host_device_round_trip():
    import numpy as np
    a = np.arange(4.0)
    assert backend.to_host(backend.to_device(a)).tolist() == a.tolist()
    backend.synchronize()
    backend.manual_seed(0)


@pytest.mark.parametrize("operator, library, name", [("__matmul__", "libcublas.so.12", "cuBLAS"),
                                                     ("__add__", "libnvrtc.so.12", "NVRTC")])
def test_missing_cuda_library_is_named_in_one_line(monkeypatch, operator, library, name):
    """CuPy loads cuBLAS and NVRTC at the first matmul and the first kernel: the check runs both."""
    from tests.standin import cupy as standin

    def fails(self, other):
        raise RuntimeError(f"CuPy failed to load {library}: OSError: {library}: cannot open shared object file")
    monkeypatch.setitem(sys.modules, "cupy", standin)
    monkeypatch.setattr(standin.ndarray, operator, fails)
    with pytest.raises(backend.BackendError) as error:
        backend.use_backend("cupy")
    message = str(error.value)
    assert f"cannot load {name}" in message and library in message and "minibn[cuda12]" in message
    assert "\n" not in message


def test_a_test_may_switch_backends():
    backend.use_backend("numpy")
    assert backend.backend_name() == "numpy"


def test_and_the_next_test_gets_the_session_backend_back():
    from tests.conftest import BACKEND
    assert backend.backend_name() == BACKEND
