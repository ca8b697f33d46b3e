# %%
"""Lesson 04: the backward of a convolution: col2im
================================================

What you learn: the gradient of im2col is col2im, which sends every column entry back to the pixel
it was copied from and ADDS where patches overlap. With it, the conv backward is two matrix
multiplies: dW = g @ cols^T and dcols = W^T @ g, then dx = col2im(dcols).

Run::

    python lessons/04_conv_backward_col2im.py        (seconds)

Look: out/04_col2im/overlap.png: how many patches cover each pixel, which is col2im(ones).
"""
# %%
import numpy as np
from common import console, lesson_args, plt, save, table

import minibn
from minibn import functional as F
from minibn.conv import col2im, im2col

args = lesson_args("04_col2im", __doc__)
rng = np.random.default_rng(0)

# %% [markdown]
# col2im is the adjoint (transpose) of im2col: <im2col(x), c> = <x, col2im(c)> for any x and c.
# That identity is exactly what makes it the right backward.
# %%
rows = []
for stride, padding in [(1, 1), (2, 1), (1, 0)]:
    x = rng.standard_normal((2, 3, 7, 7))
    cols = im2col(x, 3, 3, stride, padding)
    c = rng.standard_normal(cols.shape)
    rows.append([f"stride {stride}, padding {padding}", float((cols * c).sum()),
                 float((x * col2im(c, x.shape, stride, padding)).sum())])
table("<im2col(x), c>  vs  <x, col2im(c)>", ["case", "left", "right"], rows)

# %% [markdown]
# col2im of all-ones columns counts how often each pixel was copied: 9 in the middle for a 3x3
# kernel with stride 1, fewer at the border, and a checkerboard with stride 2.
# %%
fig, axes = plt.subplots(1, 2, figsize=(8, 3.5))
for ax, stride in zip(axes, (1, 2)):
    shape = (1, 1, 8, 8)
    ones = np.ones(im2col(np.zeros(shape), 3, 3, stride, 1).shape)
    counts = col2im(ones, shape, stride, 1)[0, 0]
    ax.imshow(counts, cmap="magma", vmin=0, vmax=9)
    for (i, j), v in np.ndenumerate(counts):
        ax.text(j, i, int(v), ha="center", va="center", color="w" if v < 6 else "k", fontsize=8)
    ax.set_title(f"patches covering each pixel, stride {stride}")
save(fig, args.out, "overlap.png")

# %% [markdown]
# The gradient check of minibn's conv2d for the cases the ResNet uses.
# %%
rows = []
for k, stride, padding in [(3, 1, 1), (3, 2, 1), (1, 2, 0)]:
    results = minibn.gradcheck(lambda x, w, s=stride, p=padding: F.conv2d(x, w, stride=s, padding=p),
                               [rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, k, k))],
                               names=["x", "weight"])
    rows += [[f"k={k} s={stride} p={padding}", r.name, r.max_rel_err, "PASS" if r.passed else "FAIL"]
             for r in results]
table("conv2d gradient check (float64)", ["conv", "input", "max rel err", "result"], rows)
console.print("A frozen weight needs no dW: minibn skips that GEMM (and keeps no columns) in BN-only training.")
