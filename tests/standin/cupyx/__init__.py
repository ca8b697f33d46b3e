"""The part of cupyx that minibn uses, for the CuPy stand-in (tests only; see ../README.md)."""
import numpy as np

import cupy


def scatter_add(a, slices, value):
    """a[slices] += value, adding repeats (cupyx.scatter_add)."""
    index = cupy._device_index(slices)
    cupy._op("scatter_add")
    np.add.at(a._a, index, value._a if isinstance(value, cupy.ndarray) else value)
