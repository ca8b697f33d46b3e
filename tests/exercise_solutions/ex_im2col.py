"""Reference solution of exercise 6 (im2col), for instructors.

Derivation: output pixel (y, x) of a kh x kw kernel with stride s reads the padded input rows
y*s .. y*s + kh - 1 and columns x*s .. x*s + kw - 1. Fix a kernel offset (i, j): over all (y, x) it
reads padded row y*s + i and column x*s + j, i.e. the strided slice [i : i + s*Ho : s, j : j + s*Wo : s].
So the gather is kh*kw slice copies, each one array operation: no Python loop over pixels. Moving
the channel axis in front of the batch (a view) lets each copy write cols[:, i, j] as a block.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from stubs import load_stub  # noqa: E402

from minibn.backend import array_module  # noqa: E402

stub = load_stub("ex_im2col")
EXERCISE = stub.EXERCISE


def im2col(x, kh, kw, stride, padding):
    xp = array_module(x)
    n, c, h, w = x.shape
    ho = (h + 2 * padding - kh) // stride + 1
    wo = (w + 2 * padding - kw) // stride + 1
    x_cn = xp.pad(x.transpose(1, 0, 2, 3), ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    cols = xp.empty((c, kh, kw, n, ho, wo), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, i, j] = x_cn[:, :, i:i + stride * ho:stride, j:j + stride * wo:stride]
    return cols
