# %%
"""Lesson 07: the same code on a GPU: CuPy, asynchrony, synchronize, memory, and why calls count
=============================================================================================

What you learn: minibn's ops are written against `xp`, so one code path runs on NumPy and CuPy.
A GPU runs kernels asynchronously: Python gets control back before the work is done, so timing
without synchronizing measures only the launch. GPU memory comes from a pool. And at CIFAR size a
GPU step is bound by the number of CuPy calls, not by arithmetic: the flat layout cuts them by 2.5x.

Run::

    python lessons/07_gpu.py        (on a machine without a GPU it explains and times NumPy only)

Look: the table of timings with and without synchronize, out/07_gpu/timings.png, and the device
operations a step makes (counted where CuPy's stand-in is on the path; see the last cell).
"""
# %%
import time

import numpy as np
from common import console, lesson_args, plt, save, table
from rich.markup import escape

import minibn
from minibn import Tensor, backend
from minibn.models import cifar_resnet, set_trainable
from minibn import functional as F

args = lesson_args("07_gpu", __doc__)
batch = 8 if args.smoke else 128

# %% [markdown]
# One forward and backward of ResNet-20 (BN-only), timed on each backend we have.
# %%
backends = ["numpy"]
try:
    backend.use_backend("cupy")
    backends.append("cupy")
except backend.BackendError as why:
    console.print(f"[yellow]No GPU here ({escape(str(why))}). The same script shows the GPU side where CuPy "
                  "works.[/yellow]")


def step(model, x, y):
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()


rows, timings = [], {}
for name in backends:
    backend.use_backend(name)
    model = cifar_resnet(20)
    set_trainable(model, "bn")
    x = Tensor(np.random.default_rng(0).standard_normal((batch, 3, 32, 32)).astype(np.float32))
    y = backend.to_device(np.arange(batch) % 10)
    step(model, x, y)  # warm-up: CuPy compiles kernels on first use
    minibn.synchronize()
    start = time.perf_counter()
    step(model, x, y)
    returned = time.perf_counter() - start
    minibn.synchronize()
    finished = time.perf_counter() - start
    timings[name] = finished
    rows.append([name, returned * 1e3, finished * 1e3])
    if name == "cupy":
        pool = backend.xp().get_default_memory_pool()
        console.print(f"CuPy memory pool: {pool.used_bytes() / 2**20:.0f} MiB in use, "
                      f"{pool.total_bytes() / 2**20:.0f} MiB held for reuse")
table(f"ResNet-20 BN-only step, batch {batch}", ["backend", "ms until Python continues", "ms until done (synchronized)"],
      rows)
console.print("On NumPy both columns match: every op finishes before Python goes on. On CuPy the first column "
              "is only the launch time; always synchronize before reading the clock.")
backend.use_backend("numpy")

fig, ax = plt.subplots(figsize=(5, 3))
ax.bar(list(timings), [t * 1e3 for t in timings.values()], color=["C0", "C2"][:len(timings)])
ax.set(ylabel="ms per training step", title=f"ResNet-20 BN-only, batch {batch}")
save(fig, args.out, "timings.png")

# %% [markdown]
# Why a GPU step at this size is bound by launches
# ------------------------------------------------
#
# Every CuPy call that works on the device (an elementwise op, a reduction, a GEMM, a copy, a gather)
# costs the host roughly 10-30 us of Python and launch work, whatever the size of its arrays (CuPy's
# own benchmarks: about 11 us for an elementwise kernel, 28 us for a reduction, 11-14 us for `matmul`).
# A ResNet-20 step at batch 128 is about 21 GFLOP: a fraction of a millisecond of arithmetic on a
# data-centre GPU. So the GPU mostly waits for the host, and what sets the step's time is the number
# of calls.
#
# `minibn/opcount.py` counts them on the strict CuPy stand-in that the tests use (a real CuPy has no
# counter). Counted on 2026-12-07, ResNet-20, any batch size, textbook ops with per-parameter SGD
# (`fast.use(fast_gpu=False, packed_sgd=False)`) -> the flat layout (`minibn/fast/gpu.py`) with packed SGD:
#
# - a BN-only training step: 1,650 -> 644 calls;
# - a full training step: 1,843 -> 696 calls;
# - an evaluation forward: 433 -> 205 calls.
#
# At 10-30 us each, 1,650 calls are 17-50 ms of host work a step, and 644 are 6-19 ms. What the flat
# layout saves (the layout is lesson 03's): a 3x3 conv is one gather (a single strided copy of a view)
# and one GEMM, about 2 calls instead of 12 (a pad, nine slice copies, the GEMM, a transpose); its input
# gradient is the same gather with the flipped kernel, 3 calls instead of 20 (col2im's nine adds and
# nine assignments). BatchNorm with its ReLU and residual add takes about 10 calls forward and 13
# backward, instead of 17 + ReLU + add forward and 11 + ReLU backward; SGD updates all 42 trainable
# tensors of BN-only training in 6 calls instead of 252, over one packed buffer; and the 21 layers'
# running statistics are updated in 4 calls instead of 147.
#
# Where the stand-in is on the path (`MINIBN_BACKEND=cupy MINIBN_CUPY_STANDIN=1 PYTHONPATH=tests/standin`),
# the cell below counts them here, op by op, for both paths.
# %%
from minibn import fast, opcount  # noqa: E402

if "cupy" in backends:
    backend.use_backend("cupy")
if opcount.counting_available():
    depth = 8 if args.smoke else 20
    counted = {}
    for flat in (False, True):
        with fast.use(fast_gpu=flat, packed_sgd=flat):  # the textbook ops and SGD, or the speed package's
            counted[flat] = opcount.step_counts(depth, "bn", batch_size=2)["train"]
    ops_by_name = sorted(set(counted[False].by_op) | set(counted[True].by_op),
                         key=lambda op: -max(counted[False].by_op.get(op, 0), counted[True].by_op.get(op, 0)))
    table(f"device operations of one ResNet-{depth} BN-only training step",
          ["op", "textbook conv and BatchNorm", "flat layout (fast_gpu)"],
          [[op, counted[False].by_op.get(op, 0), counted[True].by_op.get(op, 0)] for op in ops_by_name]
          + [["total", counted[False].total, counted[True].total]])
    low, high = counted[True].total * 10e-3, counted[True].total * 30e-3
    console.print(f"At 10-30 us a call, the flat path's {counted[True].total} calls are {low:.0f}-{high:.0f} ms of "
                  f"host work per step, far above the step's arithmetic on a GPU.")
else:
    console.print("Device operations are counted on CuPy's stand-in (tests/standin): run this lesson with "
                  "MINIBN_BACKEND=cupy MINIBN_CUPY_STANDIN=1 PYTHONPATH=tests/standin to count them here.")
backend.use_backend("numpy")
