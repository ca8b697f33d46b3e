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
    model.save(str(path))
    other = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
    other.load(str(path))
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


def test_running_statistics_update_once_for_all_layers_when_the_model_returns():
    """Inside a model's forward the BatchNorms hand their batch statistics over; when it returns, one stacked
    update (minibn/running_stats.py) gives each layer PyTorch's formula, step after step."""
    from minibn.running_stats import update_now
    rng = np.random.default_rng(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, rng=rng), nn.BatchNorm2d(4, rng=rng), nn.ReLU(),
                          nn.Conv2d(4, 5, 3, stride=2, padding=1, rng=rng), nn.BatchNorm2d(5, rng=rng)).double()
    layers = [model[1], model[4]]
    x = Tensor(rng.standard_normal((4, 3, 8, 8)))
    expected = [(host(b.running_mean).copy(), host(b.running_var).copy()) for b in layers]
    for step in range(3):
        out, inputs = x, []
        with minibn.no_grad():
            for i in range(len(model)):  # the layers' inputs, layer by layer (outside the model's call)
                if i in (1, 4):
                    inputs.append(out.numpy())
                out = model[i].forward(out) if i not in (1, 4) else F.batch_norm(
                    out, model[i].weight, model[i].bias, model[i].running_mean.copy(), model[i].running_var.copy(),
                    training=True)
        model(x)
        for layer, batch, (mean, var) in zip(layers, inputs, expected):
            update_now(mean, var, batch.mean(axis=(0, 2, 3)), batch.var(axis=(0, 2, 3)), batch.size // batch.shape[1],
                       layer.momentum)
            np.testing.assert_allclose(host(layer.running_mean), mean, rtol=1e-12)
            np.testing.assert_allclose(host(layer.running_var), var, rtol=1e-12)
    first = layers[0].running_mean
    model.float()  # new arrays: the next forward stacks them again
    model(Tensor(x.numpy().astype(np.float32)))
    assert layers[0].running_mean is not first and layers[0].running_mean.dtype == np.float32
