"""Reference solution of exercise 4 (col2im and the conv backward), for instructors.

Forward: cols = im2col(x) viewed as (C*kh*kw, P) with P = N*Ho*Wo, out_mat = W_mat @ cols (O, P),
then out = out_mat reshaped to (O, N, Ho, Wo) and transposed to NCHW. Backward, in reverse:
  g_mat  = g transposed to (O, N, Ho, Wo) and reshaped to (O, P)  (undoes the reshape/transpose)
  dW_mat = g_mat @ cols^T        (the linear layer's weight gradient, cols as its input)
  dcols  = W_mat^T @ g_mat       (its input gradient)
  dx     = col2im(dcols)         (the adjoint of im2col: every entry added back where it was copied
                                  from; overlapping patches make the adds necessary: '=' would lose them)
col2im is minibn's own (minibn/conv.py): a loop over the kernel offsets with strided slices.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from stubs import load_stub  # noqa: E402

from minibn.conv import col2im  # noqa: E402

stub = load_stub("ex_conv")
EXERCISE = stub.EXERCISE


class Conv2d(stub.Conv2d):
    @staticmethod
    def backward(ctx, g):
        cols, weight = ctx.saved
        o = g.shape[1]
        g_mat = g.transpose(1, 0, 2, 3).reshape(o, -1)
        cols_mat = cols.reshape(-1, g_mat.shape[1])
        dweight = (g_mat @ cols_mat.T).reshape(weight.shape)
        dcols = (weight.reshape(o, -1).T @ g_mat).reshape(cols.shape)
        return col2im(dcols, ctx.x_shape, ctx.stride, ctx.padding), dweight
