"""Reference solution of exercise 3 (linear)."""
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
