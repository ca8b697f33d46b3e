"""The op profiler: time per op, and which implementation ran (``minibn bench --profile``, MINIBN_PROFILE=1)."""
from __future__ import annotations

import contextlib
import os
import time

from minibn import backend


class _Profiler:
    """Per-op time, on when MINIBN_PROFILE=1 or via ``minibn bench --profile``. It synchronizes the device
    around every op, so it slows training: use it to see where time goes, never to measure speed."""

    def __init__(self):
        self.enabled = os.environ.get("MINIBN_PROFILE", "") not in ("", "0")
        self.totals: dict[tuple[str, str], list[float]] = {}
        self.modules: dict[str, str] = {}  # op name -> the module that defines it: which implementation ran

    def timing(self, op, phase: str, module: str = ""):
        """A context manager timing ``op`` (a Function class, or a name, with the ``module`` that runs it);
        a shared do-nothing one when profiling is off (the hot path)."""
        return self._timed(op, phase, module) if self.enabled else _NOT_TIMED

    @contextlib.contextmanager
    def _timed(self, op, phase: str, module: str):
        name = op if isinstance(op, str) else op.__name__
        self.modules[name] = module if isinstance(op, str) else op.__module__
        backend.synchronize()
        start = time.perf_counter()
        yield
        backend.synchronize()
        entry = self.totals.setdefault((name, phase), [0.0, 0])
        entry[0] += time.perf_counter() - start
        entry[1] += 1

    def reset(self) -> None:
        self.totals.clear()
        self.modules.clear()


_NOT_TIMED = contextlib.nullcontext()
profiler = _Profiler()
