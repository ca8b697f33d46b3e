"""Hand-written CuPy kernels for the hot spots (the GPU fast paths).

Every function here has a plain ``xp`` twin elsewhere (im2col/col2im in conv.py,
the BatchNorm formulas in batchnorm.py, ...), and tests/test_kernels.py checks that
both give the same numbers. They are used only for CuPy arrays, and only while
``use_kernels(True)`` (or MINIBN_KERNELS=1) is in force.
"""
from __future__ import annotations

import os

from minibn.backend import is_cupy_array

_enabled = os.environ.get("MINIBN_KERNELS", "0") not in ("", "0")


def use_kernels(enabled: bool) -> None:
    """Switch the CuPy fast paths on or off (the plain paths are always available)."""
    global _enabled
    _enabled = enabled


def enabled_for(array) -> bool:
    """True if ``array`` is a CuPy array and the fast paths are on."""
    return _enabled and is_cupy_array(array)
