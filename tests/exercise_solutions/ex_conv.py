"""Reference solution of exercise 4 (col2im and the conv backward).

col2im is minibn's own (minibn/conv.py): the loop over kernel offsets that adds each slice back.
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
