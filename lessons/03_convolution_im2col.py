# %%
"""Lesson 03: convolution as im2col plus one matrix multiply
=========================================================

What you learn: a convolution is a dot product of each image patch with each filter. Copying all
patches into one matrix (im2col) turns the whole layer into a single matrix multiply, which BLAS
(or cuBLAS) runs far faster than loops over pixels.

Run::

    python lessons/03_convolution_im2col.py        (a stage-1 CIFAR ResNet layer, batch 128: seconds)

Look: the timing tables (im2col vs loops; how the fast CPU path gets its speed), and
out/03_im2col/im2col.png (which pixel lands where in the matrix).
"""
# %%
import time

import numpy as np
from common import console, lesson_args, plt, save, table

from minibn import Tensor, synchronize, to_host
from minibn.conv import conv2d_naive, im2col
from minibn.functional import conv2d

args = lesson_args("03_im2col", __doc__, lambda p: p.add_argument("--batch", type=int, default=128,
                                                                  help="images in the timed batch (default: 128)"))
rng = np.random.default_rng(0)

# %% [markdown]
# A 4x4 single-channel image with 3x3 patches (padding 1): im2col makes a (1*3*3, 16) matrix whose
# column k holds the 9 pixels around output pixel k. Pixel values here are their own indices.
# %%
image = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4) + 1
cols = im2col(image, 3, 3, stride=1, padding=1).reshape(9, 16)
fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5), gridspec_kw={"width_ratios": [1, 3]})
left.imshow(image[0, 0], cmap="viridis")
for (i, j), v in np.ndenumerate(image[0, 0]):
    left.text(j, i, int(v), ha="center", va="center", color="w")
left.set_title("image (values = pixel ids)")
right.imshow(cols, cmap="viridis", aspect="auto")
for (i, j), v in np.ndenumerate(cols):
    right.text(j, i, int(v) if v else "", ha="center", va="center", color="w", fontsize=7)
right.set(title="im2col: one column per output pixel (0 = padding)", xlabel="output pixel",
          ylabel="kernel offset (i, j)")
save(fig, args.out, "im2col.png")

# %% [markdown]
# Naive loops versus im2col + GEMM on the same input: same numbers, very different times.
# %%
n, c, size, o = (2, 3, 8, 4) if args.smoke else (args.batch, 16, 32, 16)  # a stage-1 layer of the CIFAR ResNet
x = rng.standard_normal((n, c, size, size)).astype(np.float32)
w = rng.standard_normal((o, c, 3, 3)).astype(np.float32)


def best_of(fn, repeats=3):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        synchronize()  # on a GPU the call returns before the work is done: wait before reading the clock
        times.append(time.perf_counter() - start)
    return result, min(times)


naive, naive_s = best_of(lambda: conv2d_naive(x, w, stride=1, padding=1), repeats=1)
im2col_out, fast_s = best_of(lambda: conv2d(Tensor(x), Tensor(w), padding=1).data)
im2col_out = to_host(im2col_out)  # on a GPU, back to the host to compare with the NumPy loops
flops = 2 * n * o * size * size * c * 9
table(f"conv 3x3, x ({n}, {c}, {size}, {size}), {o} filters", ["method", "ms", "GFLOP/s", "max |diff|"], [
    ["naive loops over output pixels", naive_s * 1e3, flops / naive_s / 1e9, 0.0],
    ["im2col + one matrix multiply", fast_s * 1e3, flops / fast_s / 1e9, float(np.abs(naive - im2col_out).max())],
])
console.print(f"im2col is {naive_s / fast_s:.0f}x faster here. The price is memory: the column matrix "
              f"is 9x the input ({9 * x.nbytes / 2**20:.0f} MiB).")

# %% [markdown]
# How the fast CPU path gets its speed
# ------------------------------------
#
# On NumPy, `F.conv2d` (which `nn.Conv2d` calls) runs `minibn/fast/cpu_conv.py` instead of
# `conv.py`'s `Conv2d` whenever the conv has a version there: `F.conv2d` asks `minibn/registry.py`,
# where the speed package `minibn/fast` registered its version, and `python -m minibn info` lists what
# each op of a ResNet step ran. The numbers are the same as
# above; the work is arranged differently:
#
# 1. **A flat, padded layout.** Each channel is one long row holding every image, each image row
#    followed by one zero and each image by a zero row. Then kernel offset (i, j) of every output
#    pixel is the same shift, `(i-1)*(W+1) + (j-1)`, so im2col is nine slice copies, and the input
#    gradient is the same gather of the output gradient with the kernel flipped: no col2im scatter.
#    The output stays in this layout (a `FlatTensor`, whose `shape` and `data` still read NCHW), so
#    the next conv or BatchNorm takes it as it is: a ResNet converts at its stem and at its pool only,
#    and any op without a flat version gets NCHW back first (`FlatTensor.as_input_of`).
# 2. **Cache-sized chunks.** Gather the columns of about 2 MiB of output positions and multiply them
#    while they are still in the core's cache, instead of streaming a 9x-larger matrix through memory.
# 3. **One thread per core**, each running single-threaded BLAS on its own chunks.
#
# Below, the forward pass plus the input gradient (what BN-only training needs) of the same layer,
# each step added in turn.
# %%
from minibn import fast  # noqa: E402
from minibn.backend import backend_name  # noqa: E402
from minibn.fast import cpu_conv  # noqa: E402
from minibn.fast.layout import FlatLayout, from_flat, to_flat  # noqa: E402

if backend_name() != "numpy":
    console.print("The fast CPU path runs on NumPy only; run this lesson with MINIBN_BACKEND=numpy to time it.")
else:
    g = rng.standard_normal(im2col_out.shape).astype(np.float32)  # an upstream gradient

    def textbook_step():
        xt = Tensor(x, requires_grad=True)
        conv2d(xt, Tensor(w), padding=1).backward(g)
        return xt.grad

    layout = FlatLayout(n, size, size)
    x_flat, g_flat = to_flat(x, layout), to_flat(g, layout)

    def flat_step():
        xt = Tensor(x_flat, requires_grad=True)
        cpu_conv.Conv3x3Flat.apply(xt, Tensor(w), layout=layout).backward(g_flat)
        return from_flat(xt.grad, layout)

    reference, textbook_s = best_of(textbook_step)
    rows = [["textbook: im2col + GEMM, col2im", textbook_s * 1e3, 1.0, 0.0]]
    chunk_bytes, threads = fast.switches.chunk_bytes, fast.num_threads()
    for name, chunk, thread_count in [("flat layout, one GEMM over all positions", 1 << 40, 1),
                                      ("flat layout, cache-sized chunks", chunk_bytes, 1),
                                      (f"flat layout, chunks, {threads} threads", chunk_bytes, threads)]:
        with fast.use(chunk_bytes=chunk, threads=thread_count):  # each switch is put back after the block
            dx, seconds = best_of(flat_step)
        rows.append([name, seconds * 1e3, textbook_s / seconds, float(np.abs(dx - reference).max())])
    table(f"conv 3x3 forward + input gradient, x ({n}, {c}, {size}, {size})",
          ["method", "ms", "speed-up", "max |dx diff|"], rows)
    console.print("Same numbers (to float32 rounding). BatchNorm, ReLU and the residual add get the same treatment "
                  "in fast/cpu_batchnorm.py: one fused op on whole channel rows.")

# %% [markdown]
# The same layout on a GPU: fewer calls
# -------------------------------------
#
# On a GPU the cache and the threads do not matter; what costs is each CuPy call (10-30 us of host work,
# whatever its size: lesson 07). `minibn/fast/gpu.py` uses the flat layout for that: the whole im2col is
# one strided copy of an `as_strided` view (each kernel offset is a shift of the row, and the view holds
# all nine shifts of every channel) into a scratch matrix whose pad columns stay zero, then one GEMM, whose
# output therefore has zero pads too. The input gradient is the same gather of the output gradient with
# the kernel flipped; a stride-2 conv first spreads its output gradient onto the input's grid (one more
# copy) and is then a stride-1 one. Counted with `minibn/opcount.py` on CuPy's stand-in (2026-11-30), over
# the 21 convolutions of a ResNet-20 step: 2 calls per conv forward instead of 12 (a pad, nine slice
# copies, the GEMM, a transpose), and 3 per input gradient instead of about 20 (col2im's nine adds and
# nine assignments, a zeros, the GEMM, a transpose).
