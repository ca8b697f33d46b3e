"""Reference solution of exercise 4 (col2im and the conv backward)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from stubs import load_stub  # noqa: E402

from minibn.backend import array_module  # noqa: E402

stub = load_stub("ex_conv")
EXERCISE = stub.EXERCISE


def col2im(cols, x_shape, stride, padding):
    xp = array_module(cols)
    c, kh, kw, n, ho, wo = cols.shape
    _, _, h, w = x_shape
    dx_padded = xp.zeros((c, n, h + 2 * padding, w + 2 * padding), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            dx_padded[:, :, i:i + stride * ho:stride, j:j + stride * wo:stride] += cols[:, i, j]
    return xp.ascontiguousarray(dx_padded[:, :, padding:padding + h, padding:padding + w].transpose(1, 0, 2, 3))


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
