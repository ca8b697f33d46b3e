"""Exercise 4: the backward of a convolution, through col2im.

The forward is im2col followed by one matrix multiply (see minibn/conv.py and lesson 03):

    cols  = im2col(x)            (C, kh, kw, N, Ho, Wo), viewed as a (C*kh*kw, N*Ho*Wo) matrix
    out   = W_mat @ cols         W_mat = weight as (O, C*kh*kw)  ->  (O, N*Ho*Wo)  ->  (N, O, Ho, Wo)

Write ``col2im`` (the adjoint of im2col) and ``Conv2d.backward``, then grade them:

    minibn gradcheck lessons/exercises/ex_conv.py
"""
from minibn.backend import array_module
from minibn.conv import im2col
from minibn.tensor import Function

EXERCISE = "conv2d"


def col2im(cols, x_shape, stride, padding):
    """cols (C, kh, kw, N, Ho, Wo) -> dx (N, C, H, W).

    im2col copied xpad[n, c, y*stride + i, x*stride + j] into cols[c, i, j, n, y, x]. Send every
    entry of cols back to the pixel it came from, adding where patches overlap. Loop over the kernel
    offsets (i, j) and use strided slices, as im2col does: no loop over pixels. Then cut off the padding.
    """
    xp = array_module(cols)
    c, kh, kw, n, ho, wo = cols.shape
    _, _, h, w = x_shape
    dx_padded = xp.zeros((c, n, h + 2 * padding, w + 2 * padding), dtype=cols.dtype)  # (C, N, H+2p, W+2p)
    # TODO: send each kernel offset's block cols[:, i, j] back to the pixels im2col took it from
    # TODO: return the inside of dx_padded, transposed back to (N, C, H, W)
    raise NotImplementedError("write col2im")


class Conv2d(Function):
    """x (N, C, H, W), weight (O, C, kh, kw) -> out (N, O, Ho, Wo)  (no bias)."""

    @staticmethod
    def forward(ctx, x, weight, stride=1, padding=0):
        xp = array_module(x)
        n = x.shape[0]
        o, c, kh, kw = weight.shape
        cols = im2col(x, kh, kw, stride, padding)
        ho, wo = cols.shape[-2:]
        out = weight.reshape(o, -1) @ cols.reshape(c * kh * kw, -1)
        ctx.save_for_backward(cols, weight)
        ctx.x_shape, ctx.stride, ctx.padding = x.shape, stride, padding
        return xp.ascontiguousarray(out.reshape(o, n, ho, wo).transpose(1, 0, 2, 3))

    @staticmethod
    def backward(ctx, g):
        """g = dL/dout (N, O, Ho, Wo). Return (dx (N, C, H, W), dweight (O, C, kh, kw))."""
        cols, weight = ctx.saved
        # TODO: g as a matrix whose columns line up with the columns of cols
        # TODO: the weight's gradient (the shape of weight), from the matrix multiply of the forward
        # TODO: the columns' gradient (the shape of cols), then col2im back to x's shape
        raise NotImplementedError("write Conv2d.backward")
