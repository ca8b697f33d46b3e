"""A strict stand-in for CuPy, for tests on machines without a GPU (see ../README.md).

Not CuPy: device arrays hold NumPy arrays. What it copies from CuPy is the rules that break
code on a real GPU: no implicit conversion to NumPy, no host arrays mixed with device arrays,
0-d device arrays (not NumPy scalars) from reductions and indexing, a counter for every
operation that makes the host wait for the device, and a counter of device operations: what the
host launches, each costing it 10-30 us of Python and launch work on a real GPU.
"""
from __future__ import annotations

import os
import sys
import contextlib
import traceback
import weakref
from collections import Counter

import numpy as np

STANDIN = True
_HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # tests/standin: its frames are not callers
__version__ = "0.0.0+minibn.standin"

# ---- host syncs ---------------------------------------------------------------------------------
_sync_count = 0
_sync_log: list[str] = []


def _sync(what: str) -> None:
    """Record one host sync: on a GPU this waits until all queued work is done."""
    global _sync_count
    _sync_count += 1
    callers = [f for f in traceback.extract_stack()[:-2] if not f.filename.startswith(_HERE)][-2:]
    where = " <- ".join(f"{f.filename}:{f.lineno}" for f in reversed(callers))
    _sync_log.append(f"{what} at {where}")
    del _sync_log[:-50]


def sync_count() -> int:
    """How many host syncs this process has made so far."""
    return _sync_count


def sync_log() -> list[str]:
    """The last 50 syncs, each with the line that caused it."""
    return list(_sync_log)


# ---- device operations ----------------------------------------------------------------------------
class OpCounter:
    """The device operations made while it is active (see count_ops): every ufunc and operator, every
    function or method that makes a new array (a copy, a reduction, a GEMM, zeros/empty, astype), every
    gather (advanced indexing) and every assignment into an array. Views (reshape of a contiguous array,
    transpose, basic slicing) are not operations: on a GPU they launch nothing."""

    def __init__(self):
        self.total = 0
        self.by_kind: Counter = Counter()   # "multiply", "matmul", "setitem", "gather", "zeros", ...
        self.by_label: Counter = Counter()  # the label set by op_label around the operation (None: unlabelled)

    def __repr__(self):
        return f"OpCounter(total={self.total})"


_op_counters: list[OpCounter] = []
_op_label: list = [None]


@contextlib.contextmanager
def count_ops():
    """``with count_ops() as ops:`` counts the device operations made inside the block into ``ops``."""
    counter = OpCounter()
    _op_counters.append(counter)
    try:
        yield counter
    finally:
        _op_counters.remove(counter)


@contextlib.contextmanager
def op_label(label):
    """Attribute the device operations made inside the block to ``label`` (in OpCounter.by_label)."""
    _op_label.append(label)
    try:
        yield
    finally:
        _op_label.pop()


def _op(kind: str, launches: int = 1) -> None:
    for counter in _op_counters:
        counter.total += launches
        counter.by_kind[kind] += launches
        counter.by_label[_op_label[-1]] += launches


def _indexing_launches(index) -> int:
    """Kernels real CuPy launches for a gather or scatter with integer index arrays (cupy/_core/
    _routines_indexing.pyx): one index array is one ``take``; k >= 2 are a fill of the flat index, one kernel
    per index array to add its part (wrapping it into range), and the take or scatter: k + 2. An index given as
    a list or NumPy array is first copied to the device, one more each."""
    parts = index if isinstance(index, tuple) else (index,)
    arrays = [p for p in parts if isinstance(p, (ndarray, np.ndarray, list))]
    host_copies = sum(not isinstance(p, ndarray) for p in arrays)
    return host_copies + (1 if len(arrays) <= 1 else len(arrays) + 2)


def _made_new_array(result, *inputs) -> bool:
    """True if ``result`` (a host array) is new memory, not a view of one of the inputs."""
    if isinstance(result, (tuple, list)):
        return any(_made_new_array(r, *inputs) for r in result)
    if not isinstance(result, np.ndarray):
        return isinstance(result, np.generic)
    return not any(isinstance(x, np.ndarray) and np.may_share_memory(result, x) for x in inputs)


# ---- moving between host and device ---------------------------------------------------------
def _refuse_host_array(x, where: str):
    raise TypeError(f"Unsupported type {type(x)} in {where}: a NumPy array cannot be mixed with CuPy "
                    "arrays; move it to the device with cupy.asarray first")


def _to_host_storage(x, where: str, allow_sequences: bool = True):
    """The NumPy array inside a device array; scalars pass; a host array is refused."""
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, np.ndarray):
        _refuse_host_array(x, where)
    if isinstance(x, (list, tuple)):
        if not allow_sequences:
            raise TypeError(f"Unsupported type {type(x)} in {where}")
        return type(x)(_to_host_storage(v, where) for v in x)
    return x  # Python and NumPy scalars, dtypes, None, slices, strings


def _wrap(result):
    """Results of NumPy calls, as device arrays (a NumPy scalar becomes a 0-d device array)."""
    if isinstance(result, np.ndarray):
        return ndarray._of(result)
    if isinstance(result, np.generic):
        return ndarray._of(np.asarray(result))
    if isinstance(result, tuple):
        return tuple(_wrap(r) for r in result)
    if isinstance(result, list):
        return [_wrap(r) for r in result]
    return result


def asarray(a, dtype=None, order=None):
    """Host -> device (an explicit copy, as in CuPy), or a device array as it is."""
    if isinstance(a, ndarray):
        return a if dtype is None or a.dtype == np.dtype(dtype) else a.astype(dtype)
    if isinstance(a, (list, tuple)):
        a = [_to_host_storage(v, "cupy.asarray") if isinstance(v, ndarray) else v for v in a]
    _op("host->device copy")
    return ndarray._of(np.array(a, dtype=dtype, order=order or "K"))


def array(a, dtype=None, copy=True, order="K", ndmin=0):
    if isinstance(a, ndarray):
        _op("copy")
        return ndarray._of(np.array(a._a, dtype=dtype, copy=copy, order=order, ndmin=ndmin))
    return ndarray._of(np.array(asarray(a)._a, dtype=dtype, order=order, ndmin=ndmin))


asanyarray = asarray


def asnumpy(a, stream=None):
    """Device -> host: a copy, and a sync."""
    if isinstance(a, ndarray):
        return a.get()
    return np.asarray(a)


def get_array_module(*args):
    return sys.modules[__name__] if any(isinstance(a, ndarray) for a in args) else np


# ---- the device array ---------------------------------------------------------------------------
_SYNCING_METHODS = {"item", "tolist", "nonzero"}


class ndarray:
    """A CuPy-like array whose storage is a NumPy array on the host."""

    __array_priority__ = 100
    __hash__ = None

    def __init__(self, shape, dtype=float, order="C"):
        self._a = np.empty(shape, dtype=dtype, order=order)

    @classmethod
    def _of(cls, host: np.ndarray) -> "ndarray":
        out = cls.__new__(cls)
        out._a = host
        _hold(host)
        return out

    # -- what CuPy refuses or counts --------------------------------------------------------------
    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. "
                        "Please use `.get()` to construct a NumPy array explicitly.")

    def get(self, stream=None, order="C", out=None):
        _sync(".get()")
        _op("device->host copy")
        return self._a.copy(order=order)

    def __float__(self):
        _sync("float()")
        return float(self._a)

    def __int__(self):
        _sync("int()")
        return int(self._a)

    def __index__(self):
        _sync("operator.index()")
        return self._a.__index__()

    def __bool__(self):
        _sync("bool()")
        return bool(self._a)

    def __complex__(self):
        _sync("complex()")
        return complex(self._a)

    def __repr__(self):
        _sync("repr()")
        return repr(self._a)

    def __str__(self):
        _sync("str()")
        return str(self._a)

    def __format__(self, spec):
        _sync("format()")
        return self._a.__format__(spec)

    # -- array properties ---------------------------------------------------------------------------
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    nbytes = property(lambda self: self._a.nbytes)
    itemsize = property(lambda self: self._a.itemsize)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    T = property(lambda self: ndarray._of(self._a.T))

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        return (ndarray._of(self._a[i, ...]) for i in range(len(self._a)))

    # -- methods: NumPy's, with device-array arguments and results ----------------------------------
    def __copy__(self):
        _op("copy")
        return ndarray._of(self._a.copy())

    def __deepcopy__(self, memo):
        _op("copy")
        return ndarray._of(self._a.copy())

    def __getattr__(self, name):
        if name.startswith("__") or name == "_a":  # protocols it does not have (and no recursion while unpickling)
            raise AttributeError(name)
        method = getattr(self._a, name)  # AttributeError for names NumPy arrays lack
        if not callable(method):
            return _wrap(method)

        def device_method(*args, **kwargs):
            if name in _SYNCING_METHODS:
                _sync(f".{name}()")
            host_args = _to_host_storage(args, f"ndarray.{name}")
            result = method(*host_args, **{k: _to_host_storage(v, f"ndarray.{name}") for k, v in kwargs.items()})
            if name in _SYNCING_METHODS:
                _op("device->host copy")
            elif result is None or "out" in kwargs or _made_new_array(result, self._a):  # fill() works in place
                _op(name)
            if isinstance(kwargs.get("out"), ndarray):
                return kwargs["out"]  # as CuPy: the out= array itself
            return result if name in ("item", "tolist") else _wrap(result)
        return device_method

    # -- ufuncs and operators -----------------------------------------------------------------------
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        where = f"cupy.{ufunc.__name__}"
        args = [_to_host_storage(x, where, allow_sequences=False) for x in inputs]
        out = kwargs.get("out")
        if out is not None:
            kwargs["out"] = tuple(_to_host_storage(o, where, allow_sequences=False) for o in out)
        if ufunc is np.matmul and out is not None and not out[0].flags.c_contiguous:
            raise ValueError("cupy.matmul: out must be C-contiguous (CuPy asserts it)")
        result = getattr(ufunc, method)(*args, **kwargs)
        _op(ufunc.__name__ if method == "__call__" else f"{ufunc.__name__}.{method}")
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _wrap(result)

    def __array_function__(self, func, types, args, kwargs):
        """NumPy functions on device arrays run as the CuPy function of the same name (NEP 18)."""
        cupy_function = globals().get(func.__name__) or globals()["__getattr__"](func.__name__)
        return cupy_function(*args, **kwargs)

    def __getitem__(self, index):
        host_index = _wrap_out_of_bounds(_device_index(index), self._a.shape)
        result = self._a[host_index]
        if not _is_basic(host_index):
            _op("gather", _indexing_launches(index))  # advanced indexing copies; basic indexing is a view
        if not isinstance(result, np.ndarray):  # integer indexing down to one element: CuPy gives a 0-d view
            result = self._a[(host_index if isinstance(host_index, tuple) else (host_index,)) + (Ellipsis,)]
        return ndarray._of(result)

    def __setitem__(self, index, value):
        host_index = _wrap_out_of_bounds(_device_index(index), self._a.shape)
        if isinstance(value, np.ndarray) and _is_basic(host_index):
            _refuse_host_array(value, "ndarray.__setitem__")
        if _is_basic(host_index):
            _op("setitem")
        else:
            _op("scatter", _indexing_launches(index))
        self._a[host_index] = value._a if isinstance(value, ndarray) else value


def _binary(ufunc):
    return lambda self, other: ufunc(self, other)


def _reflected(ufunc):
    return lambda self, other: ufunc(other, self)


def _inplace(ufunc):
    def apply(self, other):
        ufunc(self, other, out=(self,))
        return self
    return apply


for _name, _ufunc in [("add", np.add), ("sub", np.subtract), ("mul", np.multiply), ("truediv", np.true_divide),
                      ("floordiv", np.floor_divide), ("mod", np.remainder), ("pow", np.power),
                      ("matmul", np.matmul), ("and", np.bitwise_and), ("or", np.bitwise_or),
                      ("xor", np.bitwise_xor)]:
    setattr(ndarray, f"__{_name}__", _binary(_ufunc))
    setattr(ndarray, f"__r{_name}__", _reflected(_ufunc))
    setattr(ndarray, f"__i{_name}__", _inplace(_ufunc))
for _name, _ufunc in [("lt", np.less), ("le", np.less_equal), ("gt", np.greater), ("ge", np.greater_equal),
                      ("eq", np.equal), ("ne", np.not_equal)]:
    setattr(ndarray, f"__{_name}__", _binary(_ufunc))
ndarray.__neg__ = lambda self: np.negative(self)
ndarray.__pos__ = lambda self: np.positive(self)
ndarray.__abs__ = lambda self: np.absolute(self)
ndarray.__invert__ = lambda self: np.invert(self)
ndarray.__module__ = "cupy"  # what real CuPy arrays report, and what minibn.backend looks at


def _is_basic(index) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(p, (int, np.integer, slice)) or p is None or p is Ellipsis for p in parts)


def _wrap_out_of_bounds(index, shape):
    """Integer index arrays wrapped into range, as CuPy does (NumPy raises IndexError for an index >= the size,
    and wraps only negative ones): x[[0, 3]] of 3 elements is x[[0, 0]]. For indices of integers, slices and
    integer arrays, one per axis from the first."""
    parts = index if isinstance(index, tuple) else (index,)
    if len(parts) > len(shape) or any(p is None or p is Ellipsis for p in parts):
        return index
    wrapped = tuple(np.mod(p, size) if isinstance(p, (np.ndarray, list)) and np.asarray(p).dtype.kind in "iu" and size
                    else p for p, size in zip(parts, shape))
    return wrapped if isinstance(index, tuple) else wrapped[0]


def _device_index(index):
    """An index with device arrays replaced by their storage. Lists and NumPy arrays in an index
    are allowed (CuPy copies them to the device); a boolean mask is a sync (the result's size
    depends on the data)."""
    parts = index if isinstance(index, tuple) else (index,)
    converted = []
    for p in parts:
        if isinstance(p, ndarray):
            if p.dtype == np.bool_:
                _sync("boolean-mask indexing")
            p = p._a
        converted.append(p)
    return tuple(converted) if isinstance(index, tuple) else converted[0]


# ---- module functions: NumPy's, checked -----------------------------------------------------------
def __getattr__(name):
    """cupy.<name> for every NumPy function, ufunc, type and constant that minibn and its tests use."""
    target = getattr(np, name)  # AttributeError for names NumPy lacks
    if isinstance(target, np.ufunc):
        def device_ufunc(*args, **kwargs):
            if any(isinstance(a, ndarray) for a in args) or "out" in kwargs:
                return target(*args, **kwargs)  # NumPy hands this to ndarray.__array_ufunc__, which checks
            _op(name)
            return _wrap(target(*_to_host_storage(args, f"cupy.{name}", allow_sequences=False), **kwargs))
        return device_ufunc
    if callable(target) and not isinstance(target, type):
        def device_function(*args, **kwargs):
            where = f"cupy.{name}"
            host_args = _to_host_storage(args, where)
            result = target(*host_args, **{k: _to_host_storage(v, where) for k, v in kwargs.items()})
            if "out" in kwargs or _made_new_array(result, *_flat_arrays(host_args)):  # views are not
                _op(name)
            if name in ("nonzero", "flatnonzero", "argwhere", "unique"):
                _sync(f"cupy.{name}()")
            if isinstance(kwargs.get("out"), ndarray):
                return kwargs["out"]  # as CuPy: the out= array itself
            return _wrap(result)
        return device_function
    return target  # dtypes and scalar types (cupy.float32 is numpy.float32), constants


def _flat_arrays(args):
    for a in args:
        if isinstance(a, (list, tuple)):
            yield from _flat_arrays(a)
        elif isinstance(a, np.ndarray):
            yield a


def ascontiguousarray(a, dtype=None):
    if not isinstance(a, ndarray):
        _refuse_host_array(a, "cupy.ascontiguousarray")
    result = np.ascontiguousarray(a._a, dtype=dtype)
    if result is not a._a and _made_new_array(result, a._a):
        _op("ascontiguousarray")
    return ndarray._of(result)


class _StrideTricks:
    @staticmethod
    def as_strided(x, shape=None, strides=None):
        """A view with the given shape and strides (in bytes): no operation. NumPy's, which does not check
        bounds either."""
        if not isinstance(x, ndarray):
            _refuse_host_array(x, "cupy.lib.stride_tricks.as_strided")
        return ndarray._of(np.lib.stride_tricks.as_strided(x._a, shape, strides))


class lib:  # noqa: N801  (a namespace, as cupy.lib is a module)
    stride_tricks = _StrideTricks


# ---- random numbers ----------------------------------------------------------------------------------
class _Random:
    def __init__(self):
        self._state = np.random.RandomState()

    def seed(self, seed=None):
        self._state.seed(seed)

    def __getattr__(self, name):
        method = getattr(self._state, name)

        def device_random(*args, **kwargs):
            _op(f"random.{name}")
            return _wrap(np.asarray(method(*args, **kwargs)))
        return device_random


random = _Random()


# ---- the device, streams, memory ------------------------------------------------------------------
class _Stream:
    def synchronize(self):
        _sync("stream.synchronize()")


class _Device:
    def __init__(self, device_id=0):
        self.id = device_id
        self.compute_capability = "90"
        self.mem_info = (80 * 2**30, 80 * 2**30)

    def synchronize(self):
        _sync("device.synchronize()")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _Runtime:
    @staticmethod
    def getDeviceCount():
        return 1

    @staticmethod
    def getDeviceProperties(device_id):
        return {"name": b"CuPy stand-in (NumPy arrays; tests only)", "totalGlobalMem": 80 * 2**30}

    @staticmethod
    def runtimeGetVersion():
        return 0

    @staticmethod
    def driverGetVersion():
        return 0

    @staticmethod
    def deviceSynchronize():
        _sync("cuda.runtime.deviceSynchronize()")


class _Cuda:
    runtime = _Runtime()
    Device = _Device

    @staticmethod
    def get_current_stream():
        return _Stream()

    @staticmethod
    def is_available():
        return True


cuda = _Cuda()


# Device memory: the bytes of every NumPy buffer a live device array owns or views (each buffer once),
# given back when the last array using it is gone, as CuPy's memory pool counts its used bytes.
_held: dict[int, int] = {}
_peak = [0]


def _hold(host: np.ndarray) -> None:
    owner = host
    while isinstance(owner.base, np.ndarray):
        owner = owner.base
    key = id(owner)
    if key not in _held:
        _held[key] = owner.nbytes
        weakref.finalize(owner, _held.pop, key, None)
        _peak[0] = max(_peak[0], sum(_held.values()))


class _MemoryPool:
    """CuPy's pool, as far as minibn reads it: used_bytes() is what live device arrays hold; total_bytes() is the
    most they ever held (a real pool keeps freed blocks for reuse, so its total is about that peak, until
    free_all_blocks gives the unused ones back to the device)."""

    def used_bytes(self):
        return sum(_held.values())

    def total_bytes(self):
        return _peak[0]

    def free_all_blocks(self):
        _peak[0] = self.used_bytes()


_pool = _MemoryPool()


def get_default_memory_pool():
    return _pool


# ---- what cannot run here ----------------------------------------------------------------------------
class _NeedsAGPU:
    def __init__(self, *args, **kwargs):
        raise NotImplementedError("the CuPy stand-in cannot run hand-written kernels: they run only on a real GPU")


ElementwiseKernel = ReductionKernel = RawKernel = RawModule = _NeedsAGPU


def fuse(*args, **kwargs):
    raise NotImplementedError("the CuPy stand-in cannot fuse kernels: that needs a real GPU")


class testing:  # noqa: N801  (a namespace, as cupy.testing is a module)
    @staticmethod
    def assert_allclose(actual, desired, rtol=1e-7, atol=0, err_msg="", verbose=True):
        np.testing.assert_allclose(asnumpy(actual), asnumpy(desired), rtol=rtol, atol=atol, err_msg=err_msg)

    @staticmethod
    def assert_array_equal(x, y, err_msg=""):
        np.testing.assert_array_equal(asnumpy(x), asnumpy(y), err_msg=err_msg)
