"""Which BLAS kernel NumPy's matrix multiplies run, as threadpoolctl reports it, for `minibn bench`.

OpenBLAS picks its kernel for the CPU when it loads (SkylakeX on an AVX-512 Xeon, Haswell on an AVX2
one). An environment variable can force another (OPENBLAS_CORETYPE=Haswell), and then every matmul runs
that kernel, often an older and slower one, with nothing else to show for it: a benchmark must say so.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

# Variables with which a BLAS library can be told to use another kernel than the one it picks itself
FORCING_VARIABLES = ("OPENBLAS_CORETYPE", "MKL_ENABLE_INSTRUCTIONS", "MKL_DEBUG_CPU_TYPE", "MKL_CBWR")

_PROBE = ("import json, numpy, threadpoolctl; print(json.dumps([{k: i.get(k) for k in "
          "('internal_api', 'version', 'architecture')} for i in threadpoolctl.threadpool_info() "
          "if i['user_api'] == 'blas']))")


def loaded_kernels(environment: dict | None = None) -> list[dict]:
    """The BLAS libraries NumPy loads: [{'internal_api': 'openblas', 'version': ..., 'architecture': ...}].

    With `environment`, asks a fresh Python started with it (a BLAS reads its variables when it loads).
    """
    if environment is None:
        import numpy  # noqa: F401  (threadpoolctl sees only the libraries already loaded)
        from threadpoolctl import threadpool_info
        return [{k: info.get(k) for k in ("internal_api", "version", "architecture")}
                for info in threadpool_info() if info["user_api"] == "blas"]
    done = subprocess.run([sys.executable, "-c", _PROBE], env=environment, capture_output=True, text=True,
                          timeout=60)
    return json.loads(done.stdout) if done.returncode == 0 else []


def describe() -> tuple[str, list[str]]:
    """One line naming the BLAS kernel(s), and a warning for each variable that forces an older one."""
    kernels = loaded_kernels()
    line = ", ".join(f"{k['internal_api']} {k['version']}, {k['architecture'] or 'kernel not reported'}"
                     for k in kernels) or "no BLAS library found by threadpoolctl"
    forcing = {name: os.environ[name] for name in FORCING_VARIABLES if os.environ.get(name)}
    if not forcing:
        return line, []
    unforced = loaded_kernels({k: v for k, v in os.environ.items() if k not in forcing})
    set_as = " and ".join(f"{name}={value}" for name, value in forcing.items())
    own = ", ".join(k["architecture"] or "?" for k in unforced) or "unknown"
    now = ", ".join(k["architecture"] or "?" for k in kernels)
    if own == now:
        return line, [f"{set_as} is set; without it this CPU gets the same kernel ({now})"]
    return line, [f"{set_as} forces the {now} kernel; without it OpenBLAS picks {own} for this CPU: unset it "
                  "to time what this machine can do"]
