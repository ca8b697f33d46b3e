"""The CIFAR ResNet: depths, parameter counts from the recipe, names, modes, determinism."""
import numpy as np
import pytest

from minibn import Tensor
from minibn import functional as F
from minibn.models import cifar_resnet, count_parameters, set_trainable
from tests.conftest import host

RECIPE_COUNTS = {  # depth: (conv weights, BN params, linear w+b, total), from recipe.md
    14: (173_488, 1_120, 650, 175_258),
    20: (270_256, 1_568, 650, 272_474),
    32: (463_792, 2_464, 650, 466_906),
    56: (850_864, 4_256, 650, 855_770),
    110: (1_721_776, 8_288, 650, 1_730_714),
}


@pytest.mark.parametrize("depth", sorted(RECIPE_COUNTS))
def test_parameter_counts_match_the_recipe(depth):
    counts = count_parameters(cifar_resnet(depth))
    assert (counts["conv"], counts["bn"], counts["linear"], counts["total"]) == RECIPE_COUNTS[depth]


@pytest.mark.parametrize("depth", [0, 7, 9, 21, 22, 100])
def test_invalid_depth_names_the_valid_ones(depth):
    with pytest.raises(ValueError, match=r"6n\+2 \(8, 14, 20"):
        cifar_resnet(depth)


@pytest.mark.parametrize("mode, expected", [("all", 272_474), ("bn", 1_568), ("bn+output", 2_218),
                                            ("output", 650), ("random", 1_568)])
def test_trainable_counts_for_resnet20(mode, expected):
    model = cifar_resnet(20)
    assert set_trainable(model, mode) == expected
    if mode != "random":
        assert sum(p.size for p in model.parameters() if p.requires_grad) == expected


def test_unknown_mode():
    with pytest.raises(ValueError, match="bn\\+output"):
        set_trainable(cifar_resnet(8, width=4), "gamma")


def test_names_follow_the_pytorch_cifar_resnet_layout():
    names = [n for n, _ in cifar_resnet(20).named_parameters()]
    assert names[:3] == ["conv1.weight", "bn1.weight", "bn1.bias"]
    assert "layer1.0.conv1.weight" in names and "layer3.2.bn2.bias" in names
    assert "layer2.0.shortcut.0.weight" in names and "layer2.0.shortcut.1.bias" in names
    assert "layer1.0.shortcut.0.weight" not in names
    assert names[-2:] == ["fc.weight", "fc.bias"]
    buffers = [n for n, _ in cifar_resnet(20).named_buffers()]
    assert "layer3.0.shortcut.1.running_var" in buffers


def test_init_follows_the_recipe():
    model = cifar_resnet(56, seed=1)
    gammas = np.concatenate([host(p.data) for n, p in model.named_parameters() if n.endswith("bn1.weight")])
    assert 0 <= gammas.min() and gammas.max() < 1 and 0.4 < gammas.mean() < 0.6
    conv = host(model.layer2[1].conv1.weight.data)
    assert conv.std() == pytest.approx(np.sqrt(2 / (32 * 9)), rel=0.05)
    assert all(np.all(host(p.data) == 0) for n, p in model.named_parameters() if n.endswith("bn2.bias"))


def test_random_mode_mask_has_two_per_output_channel_and_is_saved():
    model = cifar_resnet(8, width=4)
    set_trainable(model, "random", seed=3)
    mask = host(model.layer2[0].conv1.weight.mask)
    assert mask.shape == (8, 4, 3, 3) and (mask.reshape(8, -1).sum(axis=1) == 2).all()
    state = model.state_dict()
    assert "layer2.0.conv1.weight_mask" in state
    other = cifar_resnet(8, width=4)
    other.load_state_dict(state)
    np.testing.assert_array_equal(host(other.layer2[0].conv1.weight.mask), mask)
    again = cifar_resnet(8, width=4)
    set_trainable(again, "random", seed=3)
    np.testing.assert_array_equal(host(again.layer2[0].conv1.weight.mask), mask)


def forward_backward(seed):
    model = cifar_resnet(8, width=4, seed=seed)
    set_trainable(model, "all")
    x = Tensor(np.random.default_rng(0).standard_normal((4, 3, 16, 16)).astype(np.float32))
    loss = F.cross_entropy(model(x), np.array([1, 2, 3, 4]))
    loss.backward()
    return host(loss.data), [host(p.grad) for p in model.parameters()]


def test_seeded_forward_and_backward_are_deterministic():
    loss_a, grads_a = forward_backward(seed=7)
    loss_b, grads_b = forward_backward(seed=7)
    assert loss_a == loss_b
    assert all(np.array_equal(a, b) for a, b in zip(grads_a, grads_b))
    loss_c, _ = forward_backward(seed=8)
    assert loss_c != loss_a


def test_output_shape_and_frozen_backward():
    model = cifar_resnet(14)
    set_trainable(model, "bn")
    logits = model(Tensor(np.zeros((2, 3, 32, 32), dtype=np.float32)))
    assert logits.shape == (2, 10) and logits.dtype == np.float32
    F.cross_entropy(logits, np.array([0, 1])).backward()
    assert model.conv1.weight.grad is None and model.bn1.weight.grad is not None
