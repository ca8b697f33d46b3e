"""SGD (momentum, weight decay, frozen and masked parameters) and the learning-rate schedules."""
import numpy as np
import pytest

from minibn import Tensor, to_device
from minibn import functional as F
from minibn.models import cifar_resnet, set_trainable
from minibn.nn import Parameter
from minibn.optim import SGD, learning_rate
from tests.conftest import host


def test_sgd_matches_the_pytorch_formula():
    p = Parameter(np.array([1.0, -2.0]))
    opt = SGD([p], lr=0.1, momentum=0.9, weight_decay=0.01)
    expected, buf = np.array([1.0, -2.0]), None
    for grad in ([0.5, 0.5], [1.0, -1.0], [0.0, 2.0]):
        p.grad = to_device(np.array(grad))
        opt.step()
        d = np.array(grad) + 0.01 * expected
        buf = d if buf is None else 0.9 * buf + d
        expected = expected - 0.1 * buf
        np.testing.assert_allclose(host(p.data), expected)


def test_sgd_skips_frozen_parameters():
    frozen = Parameter(np.ones(3), requires_grad=False)
    frozen.grad = np.ones(3)
    opt = SGD([frozen], lr=1.0, momentum=0.9, weight_decay=0.1)
    opt.step()
    assert host(frozen.data).tolist() == [1, 1, 1] and not opt.momentum_buffers


def test_masked_elements_never_change():
    model = cifar_resnet(8, width=4)
    set_trainable(model, "random", seed=0)
    before = {n: host(p.data).copy() for n, p in model.named_parameters()}
    opt = SGD(model.parameters(), lr=0.5, momentum=0.9, weight_decay=0.1)
    x = Tensor(np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32))
    for _ in range(3):
        opt.zero_grad()
        F.cross_entropy(model(x), np.array([0, 1, 2, 3])).backward()
        opt.step()
    for name, p in model.named_parameters():
        changed = host(p.data) != before[name]
        if p.mask is None:
            assert not changed.any(), f"{name} is frozen in random mode"
        else:
            assert not (changed & (host(p.mask) == 0)).any(), f"masked elements of {name} moved"
            assert changed.any()


def test_optimizer_state_round_trip():
    p = Parameter(np.ones(2))
    opt = SGD([p], lr=0.1, momentum=0.9)
    p.grad = to_device(np.ones(2))
    opt.step()
    other = SGD([p], lr=0.1, momentum=0.9)
    other.load_state_dict(opt.state_dict())
    assert host(other.momentum_buffers[0]).tolist() == [1.0, 1.0]


def test_multistep_drops_at_the_papers_steps():
    total = 160 * 391
    assert learning_rate(31_279, total, 0.1) == 0.1
    assert learning_rate(31_280, total, 0.1) == pytest.approx(0.01)
    assert learning_rate(46_920, total, 0.1) == pytest.approx(0.001)


def test_cosine_and_warmup():
    assert learning_rate(0, 100, 0.1, "cosine") == pytest.approx(0.1)
    assert learning_rate(50, 100, 0.1, "cosine") == pytest.approx(0.05)
    assert learning_rate(0, 100, 0.1, "constant", warmup_steps=10) == pytest.approx(0.01)
    assert learning_rate(9, 100, 0.1, "constant", warmup_steps=10) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="unknown schedule"):
        learning_rate(0, 100, 0.1, "linear")
