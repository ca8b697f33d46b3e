"""Reference solution of exercise 1 (ReLU), for instructors.

relu(x) = max(x, 0) elementwise, so d relu(x_k) / d x_l is 0 for k != l, and for k = l it is 1 where
x > 0 and 0 where x < 0 (at 0 itself we take 0, as PyTorch does). The chain rule then gives
dL/dx = g * [x > 0]: the upstream gradient where the input was positive, 0 elsewhere.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from stubs import load_stub  # noqa: E402

stub = load_stub("ex_relu")
EXERCISE = stub.EXERCISE


class ReLU(stub.ReLU):
    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        return g * (x > 0)
