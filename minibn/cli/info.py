"""`minibn info`."""
from __future__ import annotations

import platform

from rich.markup import escape
from rich.table import Table

import minibn
from minibn import backend, fast
from minibn.cli.common import (backend_option, console, device_description, fast_path_options, main,
                               select_backend)


@main.command()
@backend_option
@fast_path_options
def info(backend_name, use_fast_cpu, use_kernels):
    """Show the version, the backend chosen and why, the device, library versions, the fast paths, and
    which implementation each op of a ResNet training step runs."""
    select_backend(backend_name)
    fast.use(fast_cpu=use_fast_cpu, kernels=use_kernels)
    import numpy as np
    table = Table(title="minibn info", show_header=False)
    table.add_row("minibn", minibn.__version__)
    table.add_row("python", platform.python_version())
    table.add_row("backend", backend.backend_name())
    table.add_row("why", escape(backend.backend_reason()))
    for key, value in device_description().items():
        table.add_row(key, escape(str(value)))
    table.add_row("numpy", np.__version__)
    table.add_row("BLAS", _blas_name())
    try:
        import cupy
        table.add_row("cupy", cupy.__version__)
    except ImportError:
        table.add_row("cupy", "not installed")
    for name, on, what in fast.describe():
        table.add_row(f"fast path {name}", f"{'on' if on else 'off'}: {what}")
    console.print(table)
    ops = Table(title=f"ops of a ResNet training step on {backend.backend_name()} (minibn/fast picks them)")
    for column in ("op", "implementation", "runs"):
        ops.add_column(column)
    for op, where, phases in _ops_of_a_step():
        ops.add_row(op, where, phases)
    console.print(ops)


def _ops_of_a_step() -> list[tuple[str, str, str]]:
    """(op, the file that defines it, forward/backward) for each op of one training step of a tiny ResNet."""
    from minibn.bench import minibn_training_step
    _, step = minibn_training_step(depth=8, mode="all", batch_size=2, width=4, image_size=8)
    return fast.ops_run(step)


def _blas_name() -> str:
    import numpy as np
    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version', '')}".strip()
    except Exception:  # older NumPy: no dict mode
        return "unknown"
