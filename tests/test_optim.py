"""SGD (momentum, weight decay, frozen and masked parameters), its packed-buffer twin PackedSGD (minibn/fast/sgd.py),
and the learning-rate schedules."""
import numpy as np
import pytest

from minibn import Tensor, to_device
from minibn import functional as F
from minibn.models import cifar_resnet, set_trainable
from minibn.fast.sgd import PackedSGD
from minibn.nn import Parameter
from minibn.optim import SGD, learning_rate
from tests.conftest import host

BOTH = pytest.mark.parametrize("optimizer", [SGD, PackedSGD])  # the textbook SGD and its twin


@BOTH
def test_sgd_matches_the_pytorch_formula(optimizer):
    p = Parameter(np.array([1.0, -2.0]))
    opt = optimizer([p], lr=0.1, momentum=0.9, weight_decay=0.01)
    expected, buf = np.array([1.0, -2.0]), None
    for grad in ([0.5, 0.5], [1.0, -1.0], [0.0, 2.0]):
        p.grad = to_device(np.array(grad))
        opt.step()
        d = np.array(grad) + 0.01 * expected
        buf = d if buf is None else 0.9 * buf + d
        expected = expected - 0.1 * buf
        np.testing.assert_allclose(host(p.data), expected)


@BOTH
def test_sgd_skips_frozen_parameters(optimizer):
    frozen = Parameter(np.ones(3), requires_grad=False)
    frozen.grad = np.ones(3)
    opt = optimizer([frozen], lr=1.0, momentum=0.9, weight_decay=0.1)
    opt.step()
    assert host(frozen.data).tolist() == [1, 1, 1] and not opt.momentum_buffers


@BOTH
def test_masked_elements_never_change(optimizer):
    model = cifar_resnet(8, width=4)
    set_trainable(model, "random", seed=0)
    before = {n: host(p.data).copy() for n, p in model.named_parameters()}
    opt = optimizer(model.parameters(), lr=0.5, momentum=0.9, weight_decay=0.1)
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


@BOTH
def test_optimizer_state_round_trip(optimizer):
    p = Parameter(np.ones(2))
    opt = optimizer([p], lr=0.1, momentum=0.9)
    p.grad = to_device(np.ones(2))
    opt.step()
    other = optimizer([p], lr=0.1, momentum=0.9)
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


def _one_step(model, x, labels, opt):
    opt.zero_grad()
    F.cross_entropy(model(x), labels).backward()
    opt.step()


@pytest.mark.parametrize("mode", ["bn", "all", "random"])
def test_packed_sgd_equals_the_update_parameter_by_parameter(mode):
    """PackedSGD over the packed buffers gives, bit for bit, sgd_update applied to each parameter on its own."""
    from minibn.optim import sgd_update
    model, reference = cifar_resnet(8, width=4, seed=1), cifar_resnet(8, width=4, seed=1)
    set_trainable(model, mode, seed=0), set_trainable(reference, mode, seed=0)
    opt = PackedSGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    x = Tensor(np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32))
    labels, buffers = np.array([0, 1, 2, 3]), {}
    for step in range(3):
        _one_step(model, x, labels, opt)
        reference.zero_grad()
        F.cross_entropy(reference(x), labels).backward()
        for i, p in enumerate(reference.parameters()):
            if p.requires_grad:
                first = i not in buffers
                buffers.setdefault(i, p.data * 0)
                sgd_update(p.data, p.grad, p.mask, buffers[i], first, 0.1, 0.9, 0.01)
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        assert np.array_equal(host(p.data), host(q.data)), name
    assert sorted(opt.momentum_buffers) == sorted(buffers)
    for i, buf in buffers.items():
        assert np.array_equal(host(opt.momentum_buffers[i]), host(buf))


def test_trainable_parameters_live_in_few_flat_buffers():
    model = cifar_resnet(8, width=4)
    set_trainable(model, "bn")
    opt = PackedSGD(model.parameters(), lr=0.1, momentum=0.9)
    _one_step(model, Tensor(np.ones((2, 3, 8, 8), np.float32)), np.array([0, 1]), opt)
    (group,) = opt._groups.values()
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert group.data.size == sum(p.size for p in trainable)
    assert all(p.grad is p.grad_buffer for p in trainable)
    for flat, of in ((group.data, lambda p: p.data), (group.grad, lambda p: p.grad), (group.momentum,
                     lambda p: opt.momentum_buffers[[id(q) for q in opt.params].index(id(p))])):
        flat[...] = 7  # each parameter's array is a view into the flat one
        assert all((host(of(p)) == 7).all() for p in trainable)
    assert all(p.grad_buffer is None for p in model.parameters() if not p.requires_grad)


@BOTH
def test_sgd_follows_a_change_of_trainable_parameters_and_of_dtype(optimizer):
    """Unfreezing a parameter, or casting the model, between steps makes new packed buffers; the momentum
    of the parameters that kept training carries over."""
    model = cifar_resnet(8, width=4)
    set_trainable(model, "output")
    opt = optimizer(model.parameters(), lr=0.1, momentum=0.9)
    x, labels = Tensor(np.ones((2, 3, 8, 8), np.float32)), np.array([0, 1])
    _one_step(model, x, labels, opt)
    fc = [i for i, (name, _) in enumerate(model.named_parameters()) if name.startswith("fc.")]
    momentum = {i: host(opt.momentum_buffers[i]).copy() for i in fc}
    model.bn1.weight.requires_grad = True
    model.double()
    _one_step(model, Tensor(np.ones((2, 3, 8, 8))), labels, opt)
    assert host(model.bn1.weight.data).dtype == np.float64
    assert model.bn1.weight.grad is not None and len(opt.momentum_buffers) == len(fc) + 1
    for i in fc:  # buffer = 0.9 * old + d: the old one was kept
        assert not np.array_equal(host(opt.momentum_buffers[i]), momentum[i] * 0)


@BOTH
def test_a_trainable_parameter_without_gradient_is_left_alone(optimizer):
    used, unused = Parameter(np.ones(2)), Parameter(np.ones(3))
    opt = optimizer([used, unused], lr=0.1, momentum=0.9, weight_decay=0.1)
    used.grad = to_device(np.ones(2))
    opt.step()
    assert host(unused.data).tolist() == [1, 1, 1] and list(opt.momentum_buffers) == [0]
    assert np.allclose(host(used.data), 1 - 0.1 * 1.1)


def test_plain_sgd_keeps_what_the_user_holds():
    """PyTorch's semantics: step updates p.data in place (the same array), zero_grad gives None, and the next
    backward makes a fresh gradient, never writing into one the user kept."""
    model = cifar_resnet(8, width=4)
    set_trainable(model, "bn")
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, labels = Tensor(np.ones((2, 3, 8, 8), np.float32)), np.array([0, 1])
    weight = model.bn1.weight
    data = weight.data
    _one_step(model, x, labels, opt)
    kept = weight.grad
    before = host(kept).copy()
    _one_step(model, x * 2, labels, opt)
    assert weight.data is data and weight.grad is not kept and np.array_equal(host(kept), before)
