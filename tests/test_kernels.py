"""The CuPy kernels (minibn/fast/kernels.py) give their textbook twins' numbers. Skipped without a GPU."""
import numpy as np
import pytest

from minibn import Tensor, backend, fast
from minibn.fast import kernels
from minibn import functional as F
from minibn.conv import col2im, im2col
from minibn.models import cifar_resnet, set_trainable
from minibn.optim import SGD
from tests.conftest import cupy_or_skip

CONV_CASES = [((2, 3, 7, 7), 3, 1, 1), ((2, 3, 7, 6), 3, 2, 1), ((1, 3, 5, 8), 3, 1, 0), ((3, 4, 6, 6), 1, 2, 0)]


@pytest.fixture
def cp():
    cupy = cupy_or_skip()
    backend.use_backend("cupy")  # conftest's restore_backend puts the previous one back
    yield cupy
    fast.use(kernels=False)


def plain_and_fast(fn):
    """fn() with the kernels off (the textbook ops), then on (minibn.fast picks the kernels' twins)."""
    fast.use(kernels=False)
    plain = fn()
    fast.use(kernels=True)
    with_kernels = fn()
    fast.use(kernels=False)
    return plain, with_kernels


@pytest.mark.parametrize("x_shape, k, stride, padding", CONV_CASES)
def test_im2col_and_col2im_kernels(cp, x_shape, k, stride, padding):
    x = cp.random.standard_normal(x_shape)
    plain = im2col(x, k, k, stride, padding)
    cp.testing.assert_allclose(kernels.im2col(x, k, k, stride, padding), plain, rtol=0, atol=0)
    cols = cp.random.standard_normal(plain.shape)
    cp.testing.assert_allclose(kernels.col2im(cols, x_shape, stride, padding), col2im(cols, x_shape, stride, padding),
                               rtol=1e-12, atol=1e-12)


def test_conv_kernels(cp):
    r = cp.random.standard_normal
    x, w, b = r((2, 3, 7, 6)), r((4, 3, 3, 3)), r(4)
    upstream = cp.random.standard_normal((2, 4, 4, 3))

    def run():
        xs, ws, bs = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True), Tensor(b, requires_grad=True)
        F.conv2d(xs, ws, bs, stride=2, padding=1).backward(upstream)
        return [xs.grad, ws.grad, bs.grad]
    for plain, with_kernels in zip(*plain_and_fast(run)):
        cp.testing.assert_allclose(with_kernels, plain, rtol=1e-10, atol=1e-10)


def test_batch_norm_kernels(cp):
    x = cp.random.standard_normal((8, 4, 5, 5)) * 2 + 1
    gamma, beta = cp.random.uniform(0.5, 1.5, 4), cp.random.standard_normal(4)
    upstream = cp.random.standard_normal(x.shape)

    def run():
        xs, gs, bs = Tensor(x, requires_grad=True), Tensor(gamma, requires_grad=True), Tensor(beta, requires_grad=True)
        mean, var = cp.zeros(4), cp.ones(4)
        y = F.batch_norm(xs, gs, bs, mean, var, training=True)
        y.backward(upstream)
        return [y.data, xs.grad, gs.grad, bs.grad, mean, var]
    for plain, with_kernels in zip(*plain_and_fast(run)):
        cp.testing.assert_allclose(with_kernels, plain, rtol=1e-10, atol=1e-10)


def test_cross_entropy_kernel(cp):
    logits = cp.random.standard_normal((6, 10))
    labels = cp.asarray([0, 3, 9, 3, 1, 2])

    def run():
        t = Tensor(logits, requires_grad=True)
        F.cross_entropy(t, labels).backward()
        return t.grad
    plain, with_kernels = plain_and_fast(run)
    cp.testing.assert_allclose(with_kernels, plain, rtol=1e-12, atol=1e-12)


def training_steps(steps=3):
    model = cifar_resnet(8, width=4, seed=0)
    set_trainable(model, "random", seed=0)
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    rng = np.random.default_rng(0)
    for _ in range(steps):
        x = Tensor(rng.standard_normal((8, 3, 16, 16)).astype(np.float32))
        opt.zero_grad()
        F.cross_entropy(model(x), rng.integers(0, 10, 8)).backward()
        opt.step()
    return model.state_dict()


def test_training_steps_with_and_without_kernels_agree(cp):
    plain, with_kernels = plain_and_fast(training_steps)
    for name in plain:
        np.testing.assert_allclose(with_kernels[name], plain[name], rtol=1e-4, atol=1e-5, err_msg=name)


def test_cross_entropy_kernel_makes_an_out_of_range_label_nan(cp):
    """CuPy wraps the index: without the check, label 10 of 10 classes would read class 0, a finite wrong loss."""
    logits = cp.random.standard_normal((3, 10))
    labels = cp.asarray([1, 10, -1])

    def run():
        t = Tensor(logits, requires_grad=True)
        loss = F.cross_entropy(t, labels)
        loss.backward()
        return loss.data, t.grad
    for loss, grad in plain_and_fast(run):
        assert bool(cp.isnan(loss)) and bool(cp.isnan(grad[1:]).all()) and bool(cp.isfinite(grad[0]).all())
