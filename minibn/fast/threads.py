"""Splitting an op's work over the cores: Python threads, each running single-threaded BLAS.

Why threads: NumPy releases the GIL inside a matrix multiply and inside a long elementwise loop
or copy, so two Python threads that each call NumPy on their own half of the data run on two
cores at once. That parallelizes everything (copies, BatchNorm, the GEMMs of skinny conv shapes
that OpenBLAS splits badly), where BLAS threads would parallelize only the GEMMs.

Three rules make it pay:
- BLAS gets one thread per calling thread while we are in here (threadpoolctl), or two threads
  that each start two BLAS threads fight over two cores.
- Each thread gets one long piece of work (all its chunks, or all its channels): handing a thread a
  task costs tens of microseconds, more than a small NumPy call.
- The pieces are equal: the chunk count is a multiple of the thread count.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from minibn.fast.switches import switches, use


def _cores() -> int:
    """The cores this process may run on (a container may allow fewer than the machine has)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def threads_from_environment() -> int:
    """$MINIBN_THREADS, else the cores; a ValueError that says what is wrong with a bad value."""
    value = os.environ.get("MINIBN_THREADS", "").strip()
    if not value:
        return _cores()
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"MINIBN_THREADS must be a whole number of threads, at least 1; got {value!r}")
    return int(value)


_pool: ThreadPoolExecutor | None = None  # made on first use, with the threads it was made for
_pool_threads = 0
_blas = None  # threadpoolctl's controller, made on first use (it inspects the loaded libraries)


def num_threads() -> int:
    """switches.threads, or, until it is set, $MINIBN_THREADS or the cores."""
    if switches.threads is None:
        switches.threads = threads_from_environment()
    return switches.threads


def set_num_threads(threads: int) -> None:
    """How many threads the fast CPU path uses: ``minibn.fast.use(threads=...)``, kept under its old name."""
    use(threads=threads)


def in_parallel(work: Callable[[int, int], None]) -> None:
    """Call ``work(part, parts)`` for part = 0 .. parts-1 on ``parts`` threads, BLAS at one thread each.

    The calling thread does part 0 itself. The first exception raised by any part is re-raised.
    """
    global _pool, _pool_threads, _blas
    parts = num_threads()
    if _blas is None:
        from threadpoolctl import ThreadpoolController
        _blas = ThreadpoolController()
    with _blas.limit(limits=1, user_api="blas"):
        if parts == 1:
            work(0, 1)
            return
        if _pool is None or _pool_threads != parts:
            if _pool is not None:
                _pool.shutdown()
            _pool, _pool_threads = ThreadPoolExecutor(max_workers=parts - 1, thread_name_prefix="minibn"), parts
        others = [_pool.submit(work, part, parts) for part in range(1, parts)]
        work(0, parts)
        for other in others:
            other.result()


def split(count: int, part: int, parts: int) -> range:
    """The ``part``-th of ``parts`` near-equal contiguous pieces of range(count)."""
    return range(count * part // parts, count * (part + 1) // parts)
