"""Reference solution (for instructors and the tests) of exercise 3: the backward of a linear layer.

Write ``Linear.backward``, then grade it:

    minibn gradcheck lessons/exercises/ex_linear.py
"""
from minibn.tensor import Function

EXERCISE = "linear"


class Linear(Function):
    """out = x @ weight.T + bias.  x (N, in), weight (out, in), bias (out,) -> out (N, out)."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        return x @ weight.T + bias

    @staticmethod
    def backward(ctx, g):
        """g = dL/dout, shape (N, out). Return (dx (N, in), dweight (out, in), dbias (out,))."""
        x, weight = ctx.saved
        return g @ weight, g.T @ x, g.sum(axis=0)
