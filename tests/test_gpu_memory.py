"""Device memory on the GPU path is bounded: an evaluation gives back what it kept for its batch size.

Measured with the CuPy stand-in (tests/standin), whose memory pool counts the bytes live device arrays hold, as
CuPy's pool does; run by tests/test_cupy_standin.py.
"""
import gc

import numpy as np
import pytest

from minibn import backend, fast
from minibn import functional as F
from minibn.data import CifarLoader
from minibn.models import cifar_resnet, set_trainable
from minibn.optim import SGD
from minibn.tensor import Tensor
from minibn.train import evaluate
from tests.conftest import STANDIN

pytestmark = pytest.mark.skipif(not STANDIN, reason="reads the CuPy stand-in's memory pool "
                                                    "(run by tests/test_cupy_standin.py)")


def held_bytes() -> int:
    gc.collect()
    return backend.xp().get_default_memory_pool().used_bytes()


def test_an_evaluation_at_batch_1000_gives_back_its_scratch():
    rng = np.random.default_rng(0)
    model = cifar_resnet(8, width=4, seed=0)
    set_trainable(model, "bn")
    optimizer = SGD(model.parameters(), lr=0.1, momentum=0.9)
    images = Tensor(rng.standard_normal((8, 3, 32, 32)).astype(np.float32))
    labels = backend.to_device(rng.integers(0, 10, 8))
    test_set = CifarLoader(rng.integers(0, 256, (1000, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, 1000),
                           batch_size=1000, train=False)

    def train_steps():
        for _ in range(2):
            optimizer.zero_grad()
            F.cross_entropy(model(images), labels).backward()
            optimizer.step()
    train_steps()
    after_training, kept_for_training = held_bytes(), fast.kept_bytes()
    assert kept_for_training > 0, "the flat path keeps its training scratch"
    evaluate(model, test_set)
    assert held_bytes() <= after_training
    assert fast.kept_bytes() == kept_for_training, "the training shapes' scratch stays"
    train_steps()  # and training goes on with it, allocating nothing new for good
    assert held_bytes() <= after_training


def test_the_stand_in_counts_held_memory():
    """The check above can fail: an array kept alive is counted, and given back when it goes."""
    before = held_bytes()
    kept = backend.xp().zeros((1000, 1000), dtype=np.float32)
    view = kept[::2]
    assert held_bytes() == before + 4_000_000
    del kept, view
    assert held_bytes() == before
