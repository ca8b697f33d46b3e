"""Reference solution of exercise 2 (softmax cross-entropy)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from stubs import load_stub  # noqa: E402

from minibn.backend import array_module  # noqa: E402

stub = load_stub("ex_cross_entropy")
EXERCISE = stub.EXERCISE


class CrossEntropy(stub.CrossEntropy):
    @staticmethod
    def backward(ctx, g):
        log_probs, labels = ctx.saved
        xp = array_module(log_probs)
        n = len(log_probs)
        dlogits = xp.exp(log_probs)
        dlogits[xp.arange(n), labels] -= 1
        return dlogits * (g / n)
