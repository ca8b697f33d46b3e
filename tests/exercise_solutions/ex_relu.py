"""Reference solution of exercise 1 (ReLU): the stub's forward, with its backward written."""
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
