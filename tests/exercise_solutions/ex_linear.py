"""Reference solution of exercise 3 (linear), for instructors.

out[n, o] = sum_i x[n, i] W[o, i] + b[o], so with g = dL/dout:
  dL/dx[n, i] = sum_o g[n, o] W[o, i]      -> dx = g @ W        (N, out) @ (out, in) = (N, in)
  dL/dW[o, i] = sum_n g[n, o] x[n, i]      -> dW = g.T @ x      (out, N) @ (N, in)  = (out, in)
  dL/db[o]    = sum_n g[n, o]              -> db = g summed over axis 0
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from stubs import load_stub  # noqa: E402

stub = load_stub("ex_linear")
EXERCISE = stub.EXERCISE


class Linear(stub.Linear):
    @staticmethod
    def backward(ctx, g):
        x, weight = ctx.saved
        return g @ weight, g.T @ x, g.sum(axis=0)
