"""Exercise 1: the backward of ReLU.

Write ``ReLU.backward`` below, then grade it:

    minibn gradcheck lessons/exercises/ex_relu.py

The grader runs your forward and your backward, with a random upstream gradient ``g`` in float64,
and compares them with a reference (whose gradient it checks with central differences); it prints
PASS/FAIL, the worst element and a hint.
"""
from minibn.backend import array_module
from minibn.tensor import Function

EXERCISE = "relu"


class ReLU(Function):
    """out = max(x, 0).  x: any shape -> out: the same shape."""

    @staticmethod
    def forward(ctx, x):
        out = array_module(x).maximum(x, 0)
        ctx.save_for_backward(x)
        return out

    @staticmethod
    def backward(ctx, g):
        """g = dL/dout, shaped like x. Return dL/dx, shaped like x."""
        (x,) = ctx.saved
        # TODO: one line. Where does a small change of x change the output, and by how much?
        raise NotImplementedError("write ReLU.backward")
