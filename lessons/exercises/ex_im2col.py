"""Exercise 6: im2col, the gather that turns a convolution into one matrix multiply.

For every kernel offset (i, j) and every output pixel (y, x), copy the input pixel that the offset
reads into a column matrix. Then the whole convolution is  weight (O, C*kh*kw) @ cols (C*kh*kw, N*Ho*Wo).
Lesson 03 shows the idea on a small picture. Write ``im2col``, then grade it (the grader multiplies
your columns by a weight and compares with the naive loop convolution, conv2d_naive):

    minibn gradcheck lessons/exercises/ex_im2col.py
"""
from minibn.backend import array_module

EXERCISE = "im2col"


def im2col(x, kh, kw, stride, padding):
    """x (N, C, H, W) -> cols (C, kh, kw, N, Ho, Wo), where Ho = (H + 2*padding - kh) // stride + 1
    (and Wo likewise), and cols[c, i, j, n, y, x] is the padded input at (n, c, y*stride + i, x*stride + j)."""
    xp = array_module(x)
    n, c, h, w = x.shape
    ho = (h + 2 * padding - kh) // stride + 1
    wo = (w + 2 * padding - kw) // stride + 1
    cols = xp.empty((c, kh, kw, n, ho, wo), dtype=x.dtype)
    # TODO: pad the input (zeros) on its two spatial axes.
    # TODO: fill cols one kernel offset at a time; each offset is one strided slice, no loop over pixels.
    raise NotImplementedError("write im2col")
