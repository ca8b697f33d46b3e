"""Lesson 03: convolution as im2col plus one matrix multiply.

What you learn: a convolution is a dot product of each image patch with each filter. Copying all
patches into one matrix (im2col) turns the whole layer into a single matrix multiply, which BLAS
(or cuBLAS) runs far faster than loops over pixels.
Run:   python lessons/03_convolution_im2col.py        (--full: a real CIFAR layer, batch 128)
Look:  the timing table, and out/03_im2col/im2col.png (which pixel lands where in the matrix).
"""
# %%
import time

import numpy as np
from common import console, lesson_args, plt, save, table

from minibn import Tensor, synchronize, to_host
from minibn.conv import conv2d_naive, im2col
from minibn.functional import conv2d

args = lesson_args("03_im2col", __doc__, lambda p: p.add_argument("--full", action="store_true",
                                                                  help="a stage-1 CIFAR layer at batch 128"))
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
if args.smoke:
    n, c, size, o = 2, 3, 8, 4
elif args.full:
    n, c, size, o = 128, 16, 32, 16
else:
    n, c, size, o = 32, 16, 32, 16
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
fast, fast_s = best_of(lambda: conv2d(Tensor(x), Tensor(w), padding=1).data)
fast = to_host(fast)  # on a GPU, back to the host to compare with the NumPy loops
flops = 2 * n * o * size * size * c * 9
table(f"conv 3x3, x ({n}, {c}, {size}, {size}), {o} filters", ["method", "ms", "GFLOP/s", "max |diff|"], [
    ["naive loops over output pixels", naive_s * 1e3, flops / naive_s / 1e9, 0.0],
    ["im2col + one matrix multiply", fast_s * 1e3, flops / fast_s / 1e9, float(np.abs(naive - fast).max())],
])
console.print(f"im2col is {naive_s / fast_s:.0f}x faster here. The price is memory: the column matrix "
              f"is 9x the input ({9 * x.nbytes / 2**20:.0f} MiB).")
