"""Which GPU each local worker of `minibn sweep --devices` gets, decided without CUDA in the launcher.

--devices counts the GPUs this process may see: under Slurm, or a user's own restriction, an
inherited CUDA_VISIBLE_DEVICES=2,3 makes `--devices 0` the first visible GPU (physical GPU 2), as
`cuda:0` is in PyTorch. Each worker gets CUDA_VISIBLE_DEVICES set to its one entry of that list.

The launcher itself never initialises CUDA: a CUDA context holds a few hundred MiB on its GPU for the
whole sweep, and a process that made one before forking is a trap. The GPUs are counted by a short
child process (CuPy's cudaGetDeviceCount, which sees the same CUDA_VISIBLE_DEVICES), which then ends.
"""
from __future__ import annotations

import os
import subprocess
import sys

COUNT_SECONDS = 120  # the first CUDA call may take a while on a busy node

_COUNT = """
import sys
try:
    import cupy
    print(cupy.cuda.runtime.getDeviceCount())
except Exception as error:
    print(" ".join(f"{type(error).__name__}: {error}".split()))
"""


class DeviceError(Exception):
    """--devices cannot be honoured here; the message says why and what to do."""


def inherited_devices(environ=os.environ) -> list[str] | None:
    """The entries of an inherited CUDA_VISIBLE_DEVICES (ids, UUIDs or MIG names), or None if it is unset."""
    value = environ.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return None
    return [entry.strip() for entry in value.split(",") if entry.strip()]


def visible_device_count() -> int:
    """How many CUDA devices this process may use, asked of a child process (DeviceError if it cannot tell)."""
    try:
        result = subprocess.run([sys.executable, "-c", _COUNT], capture_output=True, text=True,
                                timeout=COUNT_SECONDS, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise DeviceError(f"could not count the GPUs ({error})") from None
    answer = (result.stdout.strip().splitlines() or [f"exit {result.returncode}"])[-1]
    if not answer.isdigit():
        raise DeviceError(f"CuPy and a CUDA device are needed, and none is usable here ({answer[:300]})")
    inherited = inherited_devices()  # CUDA hides the others; say so here too, whatever answered
    return int(answer) if inherited is None else min(int(answer), len(inherited))


def worker_devices(indices: list[int], count: int, inherited: list[str] | None) -> list[str]:
    """The CUDA_VISIBLE_DEVICES value of the worker on each of ``indices`` (indices among the ``count`` visible
    GPUs); DeviceError naming an index that is not one of them."""
    if inherited is not None:
        count = min(count, len(inherited))
    if count == 0:
        raise DeviceError("--devices gives each run a GPU, but no CUDA device is visible here"
                          + ("" if inherited is None else f" (CUDA_VISIBLE_DEVICES={','.join(inherited)})"))
    if beyond := [i for i in indices if i >= count]:
        visible = "GPU 0 only" if count == 1 else f"GPUs 0 to {count - 1}"
        where = "" if inherited is None else f", the GPUs of CUDA_VISIBLE_DEVICES={','.join(inherited)}"
        raise DeviceError(f"--devices {','.join(map(str, beyond))}: this machine lets minibn see {count} GPU"
                          f"{'s' if count > 1 else ''} ({visible}{where}); count the GPUs from 0 among the "
                          f"visible ones")
    return [str(i) if inherited is None else inherited[i] for i in indices]
