"""The real CuPy, without a GPU: every hand-written kernel compiles, and every CuPy name minibn calls exists.

CuPy's wheel imports without a GPU, and its code generators and NVRTC (the CUDA runtime compiler, a pip wheel)
need no driver. So CI can check what would otherwise be found only on a GPU:

- each kernel of minibn/fast/kernels.py is turned into CUDA source by CuPy's own generators (the ones
  ElementwiseKernel and ReductionKernel call at their first launch), for every dtype minibn sends it
  (fast.KERNEL_DTYPES; float16 too for the SGD update, whose source once did not compile for it), with the
  argument shapes minibn's calls give, and compiled with NVRTC to machine code for sm_80 (A100) and sm_90
  (H100), as CuPy compiles it on such a GPU;
- every ``xp.``/``cupy.``/``cupyx.`` name in minibn's sources resolves in the real CuPy.

The generators are CuPy internals (cupy._core._kernel, _reduction): a CuPy release that moves them fails these
tests loudly rather than skipping. Skipped only where the real CuPy cannot be imported (or the run uses the
stand-in, which is not CuPy).
"""
from __future__ import annotations

import ast
import functools
import importlib
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import STANDIN

if STANDIN:
    pytest.skip("the stand-in run imports tests/standin's cupy, not the real CuPy", allow_module_level=True)
try:
    import cupy
except ImportError as error:  # pragma: no cover - where CuPy is not installed
    pytest.skip(f"the real CuPy cannot be imported ({error}); pip install '.[dev]' brings cupy-cuda12x",
                allow_module_level=True)
# CuPy's code generators and compiler: internals, imported outside the try so that a release that moves them
# fails here, loudly, instead of skipping
from cupy._core import _carray, _kernel, _reduction, _scalar  # noqa: E402
from cupy._core import core as cupy_core  # noqa: E402
from cupy.cuda import compiler  # noqa: E402

import minibn  # noqa: E402
from minibn import fast  # noqa: E402
from minibn.fast import kernels  # noqa: E402

ARCHES = ("80", "90")
MINIBN = Path(minibn.__file__).resolve().parent

# ---- arguments as CuPy's generators see them (cupy/_core/_kernel.pyx, _ArgInfo) -----------------------------
NDARRAY, INDEXER, SCALAR = 1, 2, 3  # _ArgKind


def array(dtype, ndim=1, contiguous=True):
    """A cupy.ndarray argument: after CuPy's reduce_dims, contiguous arrays are 1-d; broadcast ones keep ndim."""
    return _kernel._ArgInfo(NDARRAY, cupy.ndarray, np.dtype(dtype).type, ndim, contiguous, True)


def scalar(dtype):
    return _kernel._ArgInfo(SCALAR, _scalar.CScalar, np.dtype(dtype).type, 0, True, True)


def indexer(ndim=1):
    return _kernel._ArgInfo(INDEXER, _carray.Indexer, None, ndim, True, True)


def is_array(info) -> bool:
    return info.arg_kind == NDARRAY


def elementwise_source(kernel, args) -> str:
    """What ElementwiseKernel.__call__ compiles for these arguments (inputs then outputs; the indexer, which
    has the dimensions of the arrays that are not raw, is added)."""
    dtypes = [info.dtype if is_array(info) else None for info in args]
    _, _, type_map = kernel._decide_params_type(tuple(dtypes[:kernel.nin]), tuple(dtypes[kernel.nin:]))
    loop_ndim = max(info.ndim for info, param in zip(args, kernel.params) if is_array(info) and not param.raw)
    return _kernel._get_elementwise_kernel_code(tuple(args) + (indexer(loop_ndim),), type_map, kernel.params,
                                                kernel.operation, kernel.name, kernel.preamble)


def reduction_source(kernel, args, in_ndim, out_ndim, block_size=512) -> str:
    """What ReductionKernel.__call__ compiles for these arguments: inputs and outputs, the input's and the
    output's indexer, the block stride; 32-bit indices (fewer than 2**31 elements per output)."""
    dtypes = [info.dtype if is_array(info) else None for info in args]
    _, _, type_map = _kernel._decide_params_type(kernel.in_params, kernel.out_params, tuple(dtypes[:kernel.nin]),
                                                 tuple(dtypes[kernel.nin:]))
    type_map = _kernel._TypeMap(type_map._pairs + (("IndexT", np.int32),))
    infos = tuple(args) + (indexer(in_ndim), indexer(out_ndim), scalar(np.int32))
    return _reduction._ReductionKernel_get_cached_function_code(
        kernel.nin, kernel.nout, kernel._params, infos, type_map, kernel.name, block_size, kernel.reduce_type,
        kernel.identity, kernel.map_expr, kernel.reduce_expr, kernel.post_map_expr, kernel.preamble,
        kernel.options)


def call_sources(dtype) -> dict[str, str]:
    """CUDA source of every kernel of minibn/fast/kernels.py, with the arguments minibn's calls give it."""
    k = kernels._compiled()
    t, i32 = dtype, np.int32
    bcast = functools.partial(array, t, 4, False)  # a (1, C, 1, 1) vector broadcast against (N, C, H, W)
    sources = {
        "im2col": elementwise_source(k["im2col"], [array(t, 4)] + [scalar(i32)] * 10 + [array(t)]),
        "col2im": elementwise_source(k["col2im"], [array(t, 6)] + [scalar(i32)] * 10 + [array(t)]),
        "bn_forward": elementwise_source(k["bn_forward"], [array(t, 4, False)] + [bcast()] * 4
                                         + [array(t, 4, False)] * 2),
        "bn_backward_x": elementwise_source(k["bn_backward_x"], [array(t, 4, False)] * 2 + [bcast()] * 3
                                            + [array(t, 4, False)]),
        "sum_of_products": reduction_source(k["sum_of_products"], [array(t, 4, False)] * 2 + [array(t)], 4, 1),
        "sum_of_squared_deviations": reduction_source(k["sum_of_squared_deviations"],
                                                      [array(t, 4, False), bcast(), array(t)], 4, 1),
        "cross_entropy_backward": elementwise_source(k["cross_entropy_backward"],
                                                     [array(t), array(np.int64), scalar(i32), array(t), array(t),
                                                      array(t)]),
    }
    for mask in ("array", "scalar"):  # sgd_update passes a mask array, or the scalar 1 when nothing is masked
        mask_arg = array(t) if mask == "array" else scalar(t)
        sources[f"sgd (mask {mask})"] = elementwise_source(
            k["sgd"], [array(t), mask_arg, scalar(t), scalar(t), scalar(t), scalar(np.bool_), array(t), array(t)])
    return sources


def compile_for(source: str, arch: str) -> bytes:
    """NVRTC to a cubin for sm_<arch>, with the headers and options CuPy's compile_with_cache adds."""
    header = "".join(f"#include <{name}>\n" for name in cupy_core._cupy_header_list)
    options = cupy_core.assemble_cupy_compiler_options(()) + (f"-arch=sm_{arch}", "--device-as-default-execution-space")
    program = compiler._NVRTCProgram(header + source, "minibn_kernel.cu", (), (), method="cubin")
    binary, _ = program.compile(options)
    return binary


DTYPES = [np.dtype(d).name for d in fast.KERNEL_DTYPES]


@pytest.mark.parametrize("arch", ARCHES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_every_kernel_compiles_for_every_dtype_minibn_sends_it(dtype, arch):
    failed = {}
    for name, source in call_sources(np.dtype(dtype)).items():
        try:
            assert compile_for(source, arch)
        except compiler.CompileException as error:
            failed[name] = str(error).strip()[:600]
    assert not failed, f"kernels that do not compile for {dtype} on sm_{arch}:\n" + "\n".join(
        f"{name}: {message}" for name, message in failed.items())


@pytest.mark.parametrize("arch", ARCHES)
def test_the_sgd_kernel_compiles_for_float16(arch):
    """Its source once mixed float16 and float in a ?: (CuPy's float16 products are floats)."""
    sources = call_sources(np.dtype(np.float16))
    for name in ("sgd (mask array)", "sgd (mask scalar)"):
        assert compile_for(sources[name], arch)


def test_a_broken_source_fails_to_compile():
    """The check can fail: the float16 SGD source as it was does not compile."""
    broken = kernels._compiled()["sgd"].operation.replace("(T)((T)(momentum * buf) + d)", "momentum * buf + d")
    assert broken != kernels._compiled()["sgd"].operation
    kernel = cupy.ElementwiseKernel("T grad, T mask, T lr, T weight_decay, T momentum, bool first", "T param, T buf",
                                    broken, "minibn_sgd")
    t = np.float16
    source = elementwise_source(kernel, [array(t), array(t), scalar(t), scalar(t), scalar(t), scalar(np.bool_),
                                         array(t), array(t)])
    with pytest.raises(compiler.CompileException, match="ambiguous"):
        compile_for(source, "80")


def test_the_kernels_are_picked_only_for_the_dtypes_they_are_compiled_for():
    class DeviceArray:  # no device here to make a cupy.ndarray: the choice needs only the type's module and dtype
        __module__ = "cupy"

        def __init__(self, dtype):
            self.dtype = np.dtype(dtype)
    with fast.use(kernels=True):  # puts the switch back after
        for dtype in (np.float16, np.int64, np.complex64):
            assert not fast.kernels_for(DeviceArray(dtype)), dtype
        for dtype in fast.KERNEL_DTYPES:
            assert fast.kernels_for(DeviceArray(dtype)), dtype


# ---- every CuPy name minibn calls exists ----------------------------------------------------------------
ROOTS = {"xp": "cupy", "cupy": "cupy", "cupyx": "cupyx", "cp": "cupy",
         "_current": "cupy"}  # backend.py's current module, used as CuPy where it is not NumPy
# Names that exist only in tests/standin (minibn checks for them before use) or only in NumPy (on a path that
# runs only on NumPy arrays), with why.
NOT_CUPY = {
    "cupy.count_ops": "the stand-in's operation counter; minibn/opcount.py checks hasattr first",
    "cupy.op_label": "the stand-in's operation labels; used only where count_ops exists",
}


def attribute_chains(tree):
    """(root, "a.b.c", line) for each xp.a.b.c / cupy.a.b / xp().a ... in the tree, longest chains only."""
    found, inner = [], set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or id(node) in inner:
            continue
        parts, value = [node.attr], node.value
        while isinstance(value, ast.Attribute):
            inner.add(id(value))
            parts.append(value.attr)
            value = value.value
        if isinstance(value, ast.Call):  # backend.xp().zeros, xp().float32
            func = value.func
            value = ast.Name(id="xp") if (isinstance(func, ast.Name) and func.id == "xp") or (
                isinstance(func, ast.Attribute) and func.attr == "xp") else value
        if isinstance(value, ast.Name) and value.id in ROOTS:
            found.append((ROOTS[value.id], ".".join(reversed(parts)), node.lineno))
    return found


def resolves(module_name: str, chain: str) -> bool:
    target = importlib.import_module(module_name)
    for part in chain.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            try:
                target = importlib.import_module(f"{target.__name__}.{part}")
            except (ImportError, AttributeError):
                return False
    return True


def test_every_cupy_name_minibn_calls_exists_in_the_real_cupy():
    missing, seen = [], 0
    for path in sorted(MINIBN.rglob("*.py")):
        for root, chain, line in attribute_chains(ast.parse(path.read_text(), str(path))):
            seen += 1
            name = f"{root}.{chain}"
            if not resolves(root, chain) and name not in NOT_CUPY:
                missing.append(f"{path.relative_to(MINIBN.parent)}:{line}: {name}")
    assert seen > 50, f"the scan found only {seen} CuPy names: is it still reading minibn's sources?"
    assert not missing, "names minibn calls that the real CuPy lacks:\n" + "\n".join(missing)


def test_the_name_scan_finds_a_missing_name():
    tree = ast.parse("def f(x):\n    xp = array_module(x)\n"
                     "    return xp.no_such_function(x) + xp.lib.stride_tricks.as_strided(x)")
    chains = attribute_chains(tree)
    assert ("cupy", "no_such_function", 3) in chains and ("cupy", "lib.stride_tricks.as_strided", 3) in chains
    assert not resolves("cupy", "no_such_function") and resolves("cupy", "lib.stride_tricks.as_strided")
