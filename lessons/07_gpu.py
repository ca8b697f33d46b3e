# %%
"""Lesson 07: the same code on a GPU: CuPy, asynchrony, synchronize, memory.

What you learn: minibn's ops are written against `xp`, so one code path runs on NumPy and CuPy.
A GPU runs kernels asynchronously: Python gets control back before the work is done, so timing
without synchronizing measures only the launch. And GPU memory comes from a pool.
Run:   python lessons/07_gpu.py        (on a machine without a GPU it explains and times NumPy only)
Look:  the table of timings with and without synchronize, and out/07_gpu/timings.png.
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
