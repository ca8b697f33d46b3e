"""The fast CPU path (minibn/fast/cpu_*.py, layout.py, pool.py) gives the textbook path's numbers, in float64.

The textbook ops (conv.py, batchnorm.py, the modules) are the oracle: every fast op is compared
with them, forward and every gradient, for the ResNet's conv shapes, odd sizes, batch 1, frozen
and trained weights, on 1, 2 and 3 threads; then whole ResNets trained for a few steps each way.
"""
import numpy as np
import pytest

import minibn
from minibn import Tensor, nn
from minibn import functional as F
from minibn.batchnorm import batch_norm as textbook_batch_norm
from minibn.conv import conv2d as textbook_conv2d
from minibn.fast import buffers, threads
from minibn.fast import cpu_conv as flat_conv
from minibn.fast.cpu_batchnorm import BatchNormFlat
from minibn.fast.cpu_conv import Conv3x3Flat, ConvStridedFlat
from minibn.fast.layout import FlatLayout, ToFlat, flat, from_flat, to_flat
from minibn.fast.pool import GlobalAvgPoolFlat
from minibn.models import cifar_resnet, set_trainable
from minibn.optim import SGD
from tests.conftest import BACKEND

pytestmark = pytest.mark.skipif(BACKEND != "numpy", reason="the fast CPU path runs on NumPy arrays only")


@pytest.fixture(params=[1, 2, 3], ids=lambda t: f"{t} threads")
def thread_count(request):
    before = threads.num_threads()
    threads.set_num_threads(request.param)
    yield request.param
    threads.set_num_threads(before)


def pads_are_zero(flat, layout):
    """Keeping only the pixels (and zeroing everything else) changes nothing."""
    return np.array_equal(flat, to_flat(from_flat(flat, layout), layout))


def both_ways(flat_op, textbook_op, inputs, upstream):
    """Run the fast op on flat tensors and the textbook op on NCHW ones; return (fast, textbook) results:
    output and each input's gradient, all in NCHW (or as they are, for non-image arrays)."""
    results = []
    for op in (flat_op, textbook_op):
        tensors = [Tensor(a.copy(), requires_grad=needs) for a, needs in inputs]
        out = op(*tensors)
        out.backward(upstream(out))
        results.append([out.data] + [t.grad for t in tensors])
    return results


CONV_CASES = [  # (N, C, H, W), out channels, kernel, stride, padding
    ((3, 4, 8, 8), 5, 3, 1, 1), ((1, 3, 7, 5), 2, 3, 1, 1),                      # stride 1, odd sizes, batch 1
    ((3, 4, 8, 8), 6, 3, 2, 1), ((2, 3, 7, 5), 4, 3, 2, 1), ((1, 2, 6, 6), 3, 3, 2, 1),  # the stride-2 3x3
    ((3, 4, 8, 8), 6, 1, 2, 0), ((2, 3, 7, 5), 4, 1, 2, 0),                      # the 1x1 stride-2 shortcut
    ((2, 3, 7, 5), 4, 1, 1, 0), ((2, 3, 7, 6), 4, 3, 1, 0),                      # other convs a model may have:
    ((2, 3, 6, 5), 4, 2, 2, 1), ((2, 3, 7, 6), 3, 5, 1, 1),                      # 1x1, no padding, 2x2, 5x5
]


@pytest.mark.parametrize("x_shape, out_channels, k, stride, padding", CONV_CASES)
@pytest.mark.parametrize("weight_trains", [False, True], ids=["frozen weight", "trained weight"])
def test_conv_matches_textbook(thread_count, x_shape, out_channels, k, stride, padding, weight_trains):
    rng = np.random.default_rng(0)
    n, c, h, w = x_shape
    layout = FlatLayout(n, h, w)
    out_layout = FlatLayout(n, *[(s + 2 * padding - k) // stride + 1 for s in (h, w)])
    x, weight = rng.standard_normal(x_shape), rng.standard_normal((out_channels, c, k, k))
    upstream = rng.standard_normal((n, out_channels, out_layout.h, out_layout.w))

    def fast(xt, wt):
        assert flat_conv.has_flat_version(wt.shape, None, padding)
        out = flat_conv.conv2d(flat(xt), wt, stride, padding)  # picks Conv3x3Flat or ConvStridedFlat
        assert out.layout == out_layout and pads_are_zero(out._data, out_layout)
        assert out._ctx.fn is (Conv3x3Flat if (k, stride, padding) == (3, 1, 1) else ConvStridedFlat)
        return out  # its data and shape read (N, C, H, W), and so does the upstream gradient

    fast_results, textbook = both_ways(
        fast, lambda xt, wt: textbook_conv2d(xt, wt, stride=stride, padding=padding),
        [(x, True), (weight, weight_trains)], lambda out: upstream)
    for name, a, b in zip(["out", "dx", "dweight"], fast_results, textbook):
        if b is None:
            assert a is None, f"{name}: a frozen weight gets no gradient"
            continue
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-11, err_msg=name)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("relu, residual", [(True, True), (True, False), (False, False)],
                         ids=["bn+add+relu", "bn+relu", "bn"])
@pytest.mark.parametrize("shape", [(4, 3, 6, 5), (1, 2, 3, 3)])
def test_batch_norm_matches_textbook(thread_count, training, relu, residual, shape):
    rng = np.random.default_rng(1)
    n, c, h, w = shape
    layout = FlatLayout(n, h, w)
    x, r = rng.standard_normal(shape) * 2 + 3, rng.standard_normal(shape)
    gamma, beta = rng.uniform(0.5, 1.5, c), rng.standard_normal(c)
    upstream = rng.standard_normal(shape)
    stats = {}

    def buffers_of(name):
        stats[name] = (rng.standard_normal(c) * 0.1 + 3, rng.uniform(1, 2, c))
        return [a.copy() for a in stats[name]]

    def fast(xt, gt, bt, rt):
        mean, var = stats["fast"] = buffers_of("start")
        inputs = (ToFlat.apply(xt, layout=layout), gt, bt) + ((ToFlat.apply(rt, layout=layout),) if residual else ())
        out = BatchNormFlat.apply(*inputs, layout=layout, running_mean=mean, running_var=var, training=training,
                                  momentum=0.1, eps=1e-5, relu=relu)
        assert pads_are_zero(out.data, layout)
        return out

    def textbook(xt, gt, bt, rt):
        mean, var = stats["textbook"] = [a.copy() for a in stats["start"]]
        out = textbook_batch_norm(xt, gt, bt, mean, var, training=training)
        out = out + rt if residual else out
        return F.relu(out) if relu else out

    fast_results, textbook_results = both_ways(
        fast, textbook, [(x, True), (gamma, True), (beta, True), (r, residual)],
        lambda out: to_flat(upstream, layout) if out.ndim == 2 else upstream)
    fast_results[0] = from_flat(fast_results[0], layout)
    for name, a, b in zip(["y", "dx", "dgamma", "dbeta", "dresidual"], fast_results, textbook_results):
        if b is None:
            continue
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10, err_msg=name)
    for a, b in zip(stats["fast"], stats["textbook"]):
        np.testing.assert_allclose(a, b, rtol=1e-12, err_msg="running statistics")


def test_global_average_pool_matches_textbook():
    rng = np.random.default_rng(2)
    x, upstream = rng.standard_normal((3, 4, 5, 6)), rng.standard_normal((3, 4))
    layout = FlatLayout(3, 5, 6)
    fast, textbook = both_ways(lambda xt: GlobalAvgPoolFlat.apply(ToFlat.apply(xt, layout=layout), layout=layout),
                               lambda xt: xt.mean(axis=(2, 3)), [(x, True)], lambda out: upstream)
    for a, b in zip(fast, textbook):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def train_steps(fast: bool, mode: str, dtype, steps=3, depth=8, size=10, batch=6):
    """A ResNet trained a few steps with one path or the other; returns its state and the losses."""
    minibn.fast.use(fast_cpu=fast)
    model = cifar_resnet(depth, width=4, seed=0).to(dtype)
    set_trainable(model, mode, seed=0)
    optimizer = SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    rng, losses = np.random.default_rng(0), []
    for _ in range(steps):
        x = Tensor(rng.standard_normal((batch, 3, size, size)).astype(dtype))
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), rng.integers(0, 10, batch))
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    with minibn.no_grad():
        logits = model(Tensor(rng.standard_normal((batch, 3, size, size)).astype(dtype))).data
    return model.state_dict(), losses, logits


@pytest.mark.parametrize("mode", ["bn", "all", "random"])
def test_resnet_trained_with_either_path_agrees(mode):
    fast_state, fast_losses, fast_logits = train_steps(True, mode, np.float64)
    slow_state, slow_losses, slow_logits = train_steps(False, mode, np.float64)
    np.testing.assert_allclose(fast_losses, slow_losses, rtol=1e-12)
    np.testing.assert_allclose(fast_logits, slow_logits, rtol=1e-10, atol=1e-12, err_msg="eval mode")
    for name in slow_state:
        np.testing.assert_allclose(fast_state[name], slow_state[name], rtol=1e-10, atol=1e-12, err_msg=name)


def test_float32_resnet_agrees_to_float32_precision():
    fast_state, fast_losses, _ = train_steps(True, "all", np.float32, depth=14, size=16, batch=8)
    slow_state, slow_losses, _ = train_steps(False, "all", np.float32, depth=14, size=16, batch=8)
    np.testing.assert_allclose(fast_losses, slow_losses, rtol=1e-4)
    for name in slow_state:
        np.testing.assert_allclose(fast_state[name], slow_state[name], rtol=1e-3, atol=1e-4, err_msg=name)


def op_names(out) -> set[str]:
    """The names of the ops in the graph under ``out``."""
    names, seen, stack = set(), set(), [out]
    while stack:
        t = stack.pop()
        if t._ctx is not None and id(t._ctx) not in seen:
            seen.add(id(t._ctx))
            names.add(t._ctx.fn.__name__)
            stack.extend(t._ctx.parents)
    return names


def test_the_model_takes_the_fast_path_by_default_and_can_be_switched_off():
    model = cifar_resnet(8, width=4)
    x = Tensor(np.zeros((2, 3, 8, 8), dtype=np.float32))
    assert minibn.fast.switches.fast_cpu
    fast = op_names(model(x))
    assert {"Conv3x3Flat", "ConvStridedFlat", "BatchNormFlat", "GlobalAvgPoolFlat"} <= fast
    minibn.fast.use(fast_cpu=False)
    textbook = op_names(model(x))
    assert {"Conv2d", "BatchNorm", "ReLU", "Add"} <= textbook and not any("Flat" in op for op in textbook)


def test_environment_variable_switches_it_off():
    import os
    import subprocess
    import sys
    code = "import minibn.fast as f; print(f.switches.fast_cpu)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "MINIBN_FAST_CPU": "0"})
    assert out.stdout.strip() == "False"


def gradients_of_two_graphs_alive_at_once(fast: bool):
    minibn.fast.use(fast_cpu=fast)
    model = cifar_resnet(8, width=4, seed=0).double()
    rng = np.random.default_rng(3)
    x1, x2 = (Tensor(rng.standard_normal((3, 3, 8, 8))) for _ in range(2))
    first = model(x1)
    second = model(x2)  # made while the first graph, and its arrays, are still alive
    (first.sum() + second.sum() * 2).backward()
    return {name: p.grad for name, p in model.named_parameters()}


def test_buffers_still_in_use_are_never_reused():
    fast, textbook = gradients_of_two_graphs_alive_at_once(True), gradients_of_two_graphs_alive_at_once(False)
    for name in textbook:
        np.testing.assert_allclose(fast[name], textbook[name], rtol=1e-10, atol=1e-12, err_msg=name)


def test_buffers_are_reused_from_step_to_step():
    buffers.release()
    train_steps(True, "bn", np.float32, steps=1)
    kept = len(buffers._storages)
    train_steps(True, "bn", np.float32, steps=3)
    assert 0 < kept and len(buffers._storages) <= kept + 2  # the new model's steps found free arrays


def test_layout_round_trip_and_zero_pads():
    layout = FlatLayout(2, 3, 4)
    images = np.arange(24.0).reshape(2, 1, 3, 4) + 1
    flat = to_flat(images, layout)
    assert flat.shape == (1, layout.length) and np.count_nonzero(flat) == 24
    assert pads_are_zero(flat, layout)
    np.testing.assert_array_equal(from_flat(flat, layout), images)
    assert flat[0, layout.margin + layout.wp + 1] == images[0, 0, 1, 1]  # pixel (n, y, x) at M + n*Hp*Wp + y*Wp + x


def test_a_plain_array_takes_the_fast_path_too():
    """The training loop hands the model NumPy arrays, not Tensors."""
    model = cifar_resnet(8, width=4)
    images = np.zeros((2, 3, 8, 8), dtype=np.float32)
    assert "BatchNormFlat" in op_names(model(images))
