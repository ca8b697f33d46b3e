"""The GPU's flat-layout ops (minibn/fast/gpu.py) against their textbook twins, in float64, forward and every
gradient with a random upstream gradient; pads stay zero in everything they return.

The oracle is the textbook Function itself (conv.conv2d, batchnorm.BatchNorm), not F.conv2d or F.batch_norm,
which on CuPy pick the flat ops: so on a real GPU (`.ci/gpu-check suite`) the flat ops are compared with the
textbook ops, as on NumPy and on the stand-in, and not with themselves."""
import numpy as np
import pytest

from minibn import Tensor, backend, batchnorm, conv, ops
from minibn import functional as F
from minibn.fast.gpu import BatchNormFlatGPU, ConvFlatGPU
from minibn.fast.layout import FlatLayout, from_flat, to_flat
from tests.conftest import host


def assert_pads_zero(flat, layout):
    whole = host(flat).copy()
    layout.pixels(whole)[...] = 0
    assert not whole.any(), "pads and margins must stay zero"


def close(a, b):
    np.testing.assert_allclose(host(a), host(b), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("k, stride, h, w", [(3, 1, 5, 6), (3, 2, 7, 6), (3, 2, 8, 8), (1, 2, 7, 6), (1, 1, 4, 5)])
def test_conv_equals_the_textbook_conv(k, stride, h, w):
    rng = np.random.default_rng(k * 10 + stride)
    x, weight = rng.standard_normal((2, 3, h, w)), rng.standard_normal((4, 3, k, k))
    layout = FlatLayout(2, h, w)
    out_layout = FlatLayout(2, (h - 1) // stride + 1, (w - 1) // stride + 1)
    g = backend.to_device(rng.standard_normal((2, 4, out_layout.h, out_layout.w)))
    xt, wt = Tensor(x, requires_grad=True), Tensor(weight, requires_grad=True)
    out = conv.conv2d(xt, wt, stride=stride, padding=k // 2)  # the textbook op on any backend
    out.backward(g)
    xf, wf = Tensor(to_flat(backend.to_device(x), layout), requires_grad=True), Tensor(weight, requires_grad=True)
    flat_out = ConvFlatGPU.apply(xf, wf, layout=layout, out_layout=out_layout, stride=stride)
    assert_pads_zero(flat_out.data, out_layout)
    close(from_flat(flat_out.data, out_layout), out.data)
    flat_out.backward(to_flat(g, out_layout))
    assert_pads_zero(xf.grad, layout)
    close(from_flat(xf.grad, layout), xt.grad)
    close(wf.grad, wt.grad)


@pytest.mark.parametrize("training, relu, residual", [(True, True, True), (True, True, False), (True, False, False),
                                                      (False, True, True)])
def test_batch_norm_equals_the_textbook_ops(training, relu, residual):
    rng = np.random.default_rng(1)
    n, c, h, w = 3, 4, 5, 6
    layout = FlatLayout(n, h, w)
    x, r = backend.to_device(rng.standard_normal((n, c, h, w)) + 2), backend.to_device(rng.standard_normal((n, c, h, w)))
    gamma, beta = rng.uniform(0.5, 1.5, c), rng.normal(0, 0.5, c)
    g = backend.to_device(rng.standard_normal((n, c, h, w)))
    running = rng.uniform(0, 1, c), rng.uniform(1, 2, c)
    stats = [[backend.to_device(s.copy()) for s in running] for _ in range(2)]  # the textbook's, the flat op's
    ref = [Tensor(x, requires_grad=True), Tensor(gamma, requires_grad=True), Tensor(beta, requires_grad=True),
           Tensor(r, requires_grad=True)]
    out = batchnorm.BatchNorm.apply(ref[0], ref[1], ref[2], running_mean=stats[0][0], running_var=stats[0][1],
                                    training=training, momentum=0.1, eps=1e-5)  # the textbook op on any backend
    out = out + ref[3] if residual else out
    out = ops.ReLU.apply(out) if relu else out
    out.backward(g)
    flat = [Tensor(to_flat(x, layout), requires_grad=True), Tensor(gamma, requires_grad=True),
            Tensor(beta, requires_grad=True), Tensor(to_flat(r, layout), requires_grad=True)]
    flat_out = BatchNormFlatGPU.apply(*flat[:4 if residual else 3], layout=layout, running_mean=stats[1][0],
                                      running_var=stats[1][1], training=training, momentum=0.1, eps=1e-5,
                                      relu=relu)
    assert_pads_zero(flat_out.data, layout)
    close(from_flat(flat_out.data, layout), out.data)
    flat_out.backward(to_flat(g, layout))
    assert_pads_zero(flat[0].grad, layout)
    close(from_flat(flat[0].grad, layout), ref[0].grad)
    close(flat[1].grad, ref[1].grad), close(flat[2].grad, ref[2].grad)
    if residual:
        close(from_flat(flat[3].grad, layout), ref[3].grad)
    close(stats[1][0], stats[0][0]), close(stats[1][1], stats[0][1])


@pytest.mark.skipif(backend.backend_name() != "cupy", reason="minibn picks fast_gpu's ops for CuPy arrays: the "
                    "stand-in run (tests/test_cupy_standin.py) and a run on a GPU (.ci/gpu-check suite) have them")
@pytest.mark.parametrize("mode", ["bn", "all", "random"])
def test_a_resnet_trains_the_same_on_the_flat_path_and_the_textbook_path(mode):
    """Float64, three SGD steps: logits, every parameter's gradient, parameters and running statistics."""
    from minibn import fast
    from minibn.models import cifar_resnet, set_trainable
    from minibn.optim import SGD

    def run(flat):
        fast.use(fast_gpu=flat)
        rng = np.random.default_rng(0)
        model = cifar_resnet(8, width=4, seed=0).double()
        set_trainable(model, mode, seed=0)
        optimizer = SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
        x, labels = Tensor(rng.standard_normal((4, 3, 8, 8))), rng.integers(0, 10, 4)
        seen = []
        for _ in range(3):
            optimizer.zero_grad()
            logits = model(x)
            F.cross_entropy(logits, labels).backward()
            seen += [host(logits.data)] + [host(p.grad) for p in model.parameters() if p.grad is not None]
            optimizer.step()
        return seen, model.state_dict()
    (flat_seen, flat_state), (textbook_seen, textbook_state) = run(True), run(False)
    assert len(flat_seen) == len(textbook_seen)
    for a, b in zip(flat_seen, textbook_seen):
        close(a, b)
    for name in textbook_state:
        close(flat_state[name], textbook_state[name])


@pytest.mark.skipif(backend.backend_name() != "cupy", reason="all_checks() has the GPU's ops on CuPy only")
def test_gradcheck_on_cupy_checks_the_gpu_flat_ops_against_central_differences():
    """tests/test_gradcheck.py runs every check of all_checks(); on CuPy those include these ops."""
    from minibn.checks import all_checks
    names = {check.name for check in all_checks()}
    assert {"fast_gpu ConvFlatGPU 3x3 s=1", "fast_gpu ConvFlatGPU 3x3 s=2", "fast_gpu ConvFlatGPU 1x1 s=2",
            "fast_gpu BatchNormFlatGPU + add + relu (train)", "fast_gpu BatchNormFlatGPU + add + relu (eval)"} <= names
