"""A model is defined once: its own forward runs, whichever implementation each op runs (minibn/registry.py).

Edited blocks, a pre-activation ResNet built from minibn's layers, and models with ops that have no fast
version give the same outputs, parameter gradients and running statistics with the fast paths on and off
(float64), and an edit changes what runs.
"""
import numpy as np
import pytest

import minibn
from minibn import Tensor, fast, nn
from minibn.fast.layout import FlatTensor
from minibn import functional as F
from minibn.models import BasicBlock, cifar_resnet
from tests.conftest import STANDIN, host
from tests.test_fast_cpu import op_names


def run(model_factory, fast_paths: bool, steps: int = 2, size: int = 8, batch: int = 4):
    """Train ``model_factory()`` (float64) a couple of SGD steps with the fast paths on or off; return its
    logits, the gradients of the last step, its state (parameters and running statistics) and the ops it ran."""
    fast.use(fast_cpu=fast_paths, kernels=fast_paths and not STANDIN)  # the stand-in runs no hand-written kernel
    model = model_factory().double()
    optimizer = minibn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    rng = np.random.default_rng(0)
    for _ in range(steps):
        x = Tensor(rng.standard_normal((batch, 3, size, size)))
        optimizer.zero_grad()
        logits = model(x)
        ops = op_names(logits)  # before backward, which lets go of the graph
        F.cross_entropy(logits, rng.integers(0, 10, batch)).backward()
        optimizer.step()
    grads = {name: host(p.grad) for name, p in model.named_parameters()}
    model.eval()
    with minibn.no_grad():
        eval_logits = model(Tensor(rng.standard_normal((batch, 3, size, size)))).numpy()
    return {"logits": logits.numpy(), "eval": eval_logits, "grads": grads, "state": model.state_dict(),
            "ops": ops}


def assert_same(a, b):
    for key in ("logits", "eval"):
        np.testing.assert_allclose(a[key], b[key], rtol=1e-10, atol=1e-10, err_msg=key)
    for group in ("grads", "state"):
        assert a[group].keys() == b[group].keys()
        for name in a[group]:
            np.testing.assert_allclose(a[group][name], b[group][name], rtol=1e-10, atol=1e-10, err_msg=name)


def both_paths(model_factory):
    fast_run, textbook_run = run(model_factory, True), run(model_factory, False)
    assert_same(fast_run, textbook_run)
    return fast_run


def no_final_relu(self, x):
    """BasicBlock without its last ReLU: bn2 alone, then a plain add."""
    out = self.bn1.forward_relu(self.conv1(x))
    return self.bn2(self.conv2(out)) + (x if self.shortcut is None else self.shortcut(x))


def times_zero(self, x):
    """The edit that the old NumPy path ignored: the block's output multiplied by zero."""
    return 0 * ORIGINAL_FORWARD(self, x)


ORIGINAL_FORWARD = BasicBlock.forward


@pytest.mark.parametrize("edit", [no_final_relu, times_zero])
def test_an_edited_block_runs_on_every_path(monkeypatch, edit):
    tiny = lambda: cifar_resnet(8, width=4, seed=0)  # noqa: E731
    original = run(tiny, True)
    monkeypatch.setattr(BasicBlock, "forward", edit)
    edited = both_paths(tiny)
    assert np.abs(edited["eval"] - original["eval"]).max() > 1e-3, "the edit must change what the model computes"


class PreActBlock(nn.Module):
    """Pre-activation basic block (He et al. 2016, identity mappings): BN -> ReLU -> conv, twice, plus shortcut."""

    def __init__(self, in_channels, out_channels, stride, rng):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels, rng=rng)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, rng=rng)
        self.bn2 = nn.BatchNorm2d(out_channels, rng=rng)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, rng=rng)
        self.shortcut = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=stride, rng=rng)

    def forward(self, x):
        out = F.relu(self.bn1(x))
        shortcut = x if self.shortcut is None else self.shortcut(out)
        out = self.conv1(out)
        return self.conv2(F.relu(self.bn2(out))) + shortcut


class PreActResNet(nn.Module):
    def __init__(self, width=4, seed=0):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.conv1 = nn.Conv2d(3, width, 3, padding=1, rng=rng)
        self.layer1 = nn.Sequential(PreActBlock(width, width, 1, rng), PreActBlock(width, 2 * width, 2, rng))
        self.bn = nn.BatchNorm2d(2 * width, rng=rng)
        self.fc = nn.Linear(2 * width, 10, rng=rng)

    def forward(self, x):
        out = F.relu(self.bn(self.layer1(self.conv1(x))))
        return self.fc(F.global_avg_pool2d(out))


def test_a_pre_activation_resnet_from_minibn_layers():
    ran = both_paths(PreActResNet)
    if minibn.backend_name() == "numpy":
        # on NumPy the whole network stays in the flat layout: converted at the stem only, never back
        assert {"Conv3x3Flat", "ConvStridedFlat", "BatchNormFlat", "GlobalAvgPoolFlat", "Add",
                "ReLU"} <= ran["ops"]
        assert "FromFlat" not in ran["ops"] and "Conv2d" not in ran["ops"]


class WithoutFastVersions(nn.Module):
    """A conv with a bias, a 2x2 max-pool written from functional ops, a 5x5 conv with padding 2."""

    def __init__(self, seed=0):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1, rng=rng)
        self.bn1 = nn.BatchNorm2d(4, rng=rng)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1, bias=True, rng=rng)
        self.conv3 = nn.Conv2d(4, 6, 5, padding=2, rng=rng)
        self.fc = nn.Linear(6, 10, rng=rng)

    def forward(self, x):
        out = self.bn1.forward_relu(self.conv1(x))     # flat on NumPy
        out = self.conv2(out)                            # a bias: the textbook Conv2d, on NCHW
        n, c, h, w = out.shape
        out = out.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))  # max-pool 2x2
        out = F.relu(self.conv3(out))
        return self.fc(F.global_avg_pool2d(out))


def test_ops_without_a_fast_version_run_correctly_with_the_fast_path_on():
    ran = both_paths(WithoutFastVersions)
    if minibn.backend_name() == "numpy":
        assert {"Conv3x3Flat", "BatchNormFlat", "FromFlat", "Conv2d", "Max"} <= ran["ops"]


def test_a_flat_tensor_looks_like_an_nchw_one():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 5, 4))
    gamma, beta = Tensor(rng.uniform(0.5, 1.5, 3)), Tensor(rng.standard_normal(3))
    outs = []
    for fast_paths in (True, False):
        fast.use(fast_cpu=fast_paths)
        out = F.batch_norm(Tensor(x), gamma, beta, minibn.to_device(np.zeros(3)), minibn.to_device(np.ones(3)),
                           training=True)
        assert out.shape == (2, 3, 5, 4) and out.ndim == 4 and out.size == 120 and out.data.shape == out.shape
        outs.append(out)
    assert isinstance(outs[0], FlatTensor) or minibn.backend_name() != "numpy"
    np.testing.assert_allclose(outs[0].numpy(), outs[1].numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(host(outs[0].data), host(outs[1].data), rtol=1e-12, atol=1e-12)


def test_both_switches_read_their_environment_variable_the_same_way():
    import os
    import subprocess
    import sys
    code = "from minibn import fast; print(fast.switches.fast_cpu, fast.switches.kernels)"
    said = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "MINIBN_FAST_CPU": cpu, "MINIBN_KERNELS": gpu}).stdout.split()
            for cpu, gpu in (("0", "1"), ("1", "0"))]
    assert said == [["False", "True"], ["True", "False"]]
