"""conv2d against the naive loops, batch_norm's statistics and buffers, and the modules."""
import numpy as np
import pytest

import minibn
from minibn import Tensor, nn
from minibn import functional as F
from minibn.conv import col2im, im2col
from tests.conftest import host

CONV_CASES = [  # (N, C, H, W), O, k, stride, padding
    ((2, 3, 7, 7), 4, 3, 1, 1), ((2, 3, 7, 6), 4, 3, 2, 1), ((1, 3, 5, 8), 2, 3, 1, 0),
    ((3, 4, 6, 6), 5, 1, 2, 0), ((1, 2, 4, 5), 3, 1, 1, 0), ((2, 2, 8, 8), 3, 3, 2, 0),
]


@pytest.mark.parametrize("x_shape, out_channels, k, stride, padding", CONV_CASES)
def test_conv2d_matches_naive_loops(x_shape, out_channels, k, stride, padding):
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal(x_shape), rng.standard_normal((out_channels, x_shape[1], k, k)), rng.standard_normal(out_channels)
    fast = F.conv2d(Tensor(x), Tensor(w), Tensor(b), stride=stride, padding=padding)
    np.testing.assert_allclose(host(fast.data), F.conv2d_naive(x, w, b, stride, padding), rtol=1e-10, atol=1e-10)


def test_col2im_is_the_adjoint_of_im2col():
    """<im2col(x), c> == <x, col2im(c)> for all x, c: exactly what a correct backward needs."""
    rng = np.random.default_rng(1)
    x = minibn.to_device(rng.standard_normal((2, 3, 7, 6)))
    cols = im2col(x, 3, 3, 2, 1)
    c = minibn.to_device(rng.standard_normal(cols.shape))
    assert float((cols * c).sum()) == pytest.approx(float((x * col2im(c, x.shape, 2, 1)).sum()))


def test_frozen_conv_weight_gets_no_gradient_and_saves_no_columns():
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3, 5, 5)), requires_grad=True)
    w = Tensor(np.ones((4, 3, 3, 3)))
    out = F.conv2d(x, w, padding=1)
    cols, weight = out._ctx.saved
    assert cols is None and weight is not None
    out.sum().backward()
    assert w.grad is None and x.grad.shape == x.shape


def test_batch_norm_train_statistics_and_running_update():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 3, 4, 4)) * 3 + 2
    mean, var = minibn.to_device(np.zeros(3)), minibn.to_device(np.ones(3))
    y = F.batch_norm(Tensor(x), Tensor(np.ones(3)), Tensor(np.zeros(3)), mean, var, training=True, momentum=0.1)
    y = host(y.data)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1, atol=1e-4)
    np.testing.assert_allclose(host(mean), 0.1 * x.mean(axis=(0, 2, 3)))
    np.testing.assert_allclose(host(var), 0.9 + 0.1 * x.var(axis=(0, 2, 3), ddof=1))


def test_batch_norm_eval_uses_running_statistics():
    x = np.full((2, 2, 1, 1), 3.0)
    mean, var = minibn.to_device(np.array([1.0, 2.0])), minibn.to_device(np.array([4.0, 1.0]))
    y = F.batch_norm(Tensor(x), Tensor(np.array([2.0, 1.0])), Tensor(np.array([0.5, 0.0])), mean, var,
                     training=False, eps=0.0)
    np.testing.assert_allclose(host(y.data)[0, :, 0, 0], [2.0 * (3 - 1) / 2 + 0.5, 1.0])
    assert host(mean).tolist() == [1.0, 2.0]  # eval mode leaves the buffers alone


def test_running_stats_update_when_gamma_beta_frozen():
    bn = nn.BatchNorm2d(3)
    bn.requires_grad_(False)
    bn(Tensor(np.random.default_rng(0).standard_normal((4, 3, 2, 2)).astype(np.float32) + 5))
    assert host(bn.running_mean).min() > 0.3


def test_module_names_modes_and_state_dict(tmp_path):
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
    names = [n for n, _ in model.named_parameters()]
    assert names == ["0.weight", "1.weight", "1.bias"]
    assert [n for n, _ in model.named_buffers()] == ["1.running_mean", "1.running_var"]
    model.eval()
    assert not model[1].training
    model.train()
    assert model[1].training
    state = model.state_dict()
    assert all(isinstance(v, np.ndarray) for v in state.values())
    path = tmp_path / "model.npz"
    minibn.save(model.state_dict(), str(path))
    other = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
    other.load_state_dict(minibn.load(str(path)))
    for key, value in other.state_dict().items():
        np.testing.assert_array_equal(value, state[key])


def test_load_state_dict_reports_mismatches():
    model = nn.Linear(3, 2)
    state = model.state_dict()
    with pytest.raises(KeyError, match="missing"):
        model.load_state_dict({"weight": state["weight"]})
    with pytest.raises(ValueError, match="shape"):
        model.load_state_dict({"weight": np.zeros((3, 3)), "bias": state["bias"]})


def test_double_and_float():
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm2d(2))
    model.double()
    assert all(p.dtype == np.float64 for p in model.parameters()) and model[1].running_var.dtype == np.float64
    model.float()
    assert all(p.dtype == np.float32 for p in model.parameters())


def test_save_refuses_pickled_objects(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, obj=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="pickle"):
        minibn.load(str(path))


def test_zero_grad():
    layer = nn.Linear(3, 2)
    F.linear(Tensor(np.ones((1, 3), dtype=np.float32)), layer.weight, layer.bias).sum().backward()
    assert layer.weight.grad is not None
    layer.zero_grad()
    assert layer.weight.grad is None


def _running_statistics_follow_pytorch(model, layers, x, steps=3):
    """Train-mode forwards of ``model``: after each, every layer's running statistics are PyTorch's update of
    the batch that layer saw, in the very arrays that were there before the forward."""
    held = [(b.running_mean, b.running_var) for b in layers]  # references taken before any forward
    expected = [(host(mean).copy(), host(var).copy()) for mean, var in held]
    for _ in range(steps):
        out, inputs = x, []
        with minibn.no_grad():
            for i in range(len(model)):  # the layers' inputs, layer by layer (outside the model's call)
                if model[i] in layers:
                    inputs.append(out.numpy())
                out = model[i].forward(out) if model[i] not in layers else F.batch_norm(
                    out, model[i].weight, model[i].bias, model[i].running_mean.copy(), model[i].running_var.copy(),
                    training=True)
        model(x)
        for layer, batch, (mean, var), (held_mean, held_var) in zip(layers, inputs, expected, held):
            m = batch.size // batch.shape[1]
            mean[...] = 0.9 * mean + 0.1 * batch.mean(axis=(0, 2, 3))
            var[...] = 0.9 * var + 0.1 * batch.var(axis=(0, 2, 3)) * m / (m - 1)
            assert layer.running_mean is held_mean and layer.running_var is held_var
            np.testing.assert_allclose(host(held_mean), mean, rtol=1e-12)
            np.testing.assert_allclose(host(held_var), var, rtol=1e-12)


def _two_bn_model(rng):
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, rng=rng), nn.BatchNorm2d(4, rng=rng), nn.ReLU(),
                         nn.Conv2d(4, 5, 3, stride=2, padding=1, rng=rng), nn.BatchNorm2d(5, rng=rng)).double()


@pytest.mark.parametrize("fast_paths", [True, False])
def test_a_reference_to_running_mean_sees_the_training_forward_that_computed_it(fast_paths):
    """PyTorch's semantics: bn.running_mean is one array for the module's life, updated in place by the
    training-mode forward (with the fast paths, and with the textbook ops only)."""
    rng = np.random.default_rng(0)
    model = _two_bn_model(rng)
    with minibn.fast.use(fast_cpu=fast_paths, fast_gpu=fast_paths):
        _running_statistics_follow_pytorch(model, [model[1], model[4]], Tensor(rng.standard_normal((4, 3, 8, 8))))


def test_stacked_running_statistics_keep_the_arrays_and_update_when_the_model_returns():
    """minibn.fast.running_stats.stack (opt-in; minibn train on CuPy): the layers' buffers become views of one
    array once, then stay the same arrays, and each training forward updates them all (on CuPy, the GPU
    BatchNorm hands its statistics to one update when the model returns; elsewhere each layer updates)."""
    rng = np.random.default_rng(0)
    model = _two_bn_model(rng)
    minibn.fast.running_stats.stack(model)
    _running_statistics_follow_pytorch(model, [model[1], model[4]], Tensor(rng.standard_normal((4, 3, 8, 8))))


def test_stacked_statistics_of_a_layer_run_on_its_own_update_at_once():
    """Outside the model's forward (a sub-module called directly), a stacked layer updates in its own forward."""
    rng = np.random.default_rng(0)
    model = _two_bn_model(rng)
    minibn.fast.running_stats.stack(model)
    held = model[1].running_mean
    before = host(held).copy()
    model[1](Tensor(rng.standard_normal((4, 4, 5, 5))))
    assert model[1].running_mean is held and not np.array_equal(host(held), before)
