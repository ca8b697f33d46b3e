"""The gradient checks that `minibn gradcheck` and the tests run: every op and layer.

Each check is a name, the function of Tensors to differentiate, and float64
inputs chosen away from kinks (relu at 0, ties in max, log of numbers near 0).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from minibn import functional as F
from minibn import models, nn, registry
from minibn.backend import to_device
from minibn.batchnorm import batch_norm
from minibn.conv import conv2d
from minibn.tensor import Tensor


@dataclass
class Check:
    """A gradient check: ``fn``'s backward against central differences at ``inputs`` (float64)."""
    name: str
    fn: Callable[..., Tensor]
    inputs: list
    max_elements: int | None = None
    names: list[str] | None = None


@dataclass
class ValueCheck:
    """A value check: ``compute()`` returns (name, yours, expected) array triples to compare."""
    name: str
    compute: Callable[[], list[tuple[str, object, object]]]


def away_from_zero(rng, *shape, margin=0.1):
    """Normal samples moved ``margin`` away from 0 (from ReLU's kink)."""
    x = rng.standard_normal(shape)
    return x + np.sign(x) * margin


def op_checks(seed: int = 0) -> list[Check]:
    """Checks of the elementary ops and functional layers (float64, small shapes)."""
    rng = np.random.default_rng(seed)
    r = rng.standard_normal
    positive = lambda *s: rng.uniform(0.5, 2.0, s)  # noqa: E731
    labels = rng.integers(0, 5, size=4)
    return [
        Check("add (broadcast)", lambda a, b: a + b, [r((3, 4)), r((4,))]),
        Check("sub (broadcast)", lambda a, b: a - b, [r((2, 3, 4)), r((3, 1))]),
        Check("mul (broadcast)", lambda a, b: a * b, [r((3, 4)), r((3, 1))]),
        Check("div (broadcast)", lambda a, b: a / b, [r((3, 4)), positive(1, 4)]),
        Check("neg", lambda a: -a, [r((3, 4))]),
        Check("pow 3", lambda a: a ** 3, [r((3, 4))]),
        Check("pow -0.5", lambda a: a ** -0.5, [positive(3, 4)]),
        Check("exp", lambda a: a.exp(), [r((3, 4))]),
        Check("log", lambda a: a.log(), [positive(3, 4)]),
        Check("sqrt", lambda a: a.sqrt(), [positive(3, 4)]),
        Check("relu", F.relu, [away_from_zero(rng, 3, 4)]),
        Check("matmul", lambda a, b: a @ b, [r((3, 4)), r((4, 5))]),
        Check("matmul (batched)", lambda a, b: a @ b, [r((2, 3, 4)), r((4, 5))]),
        Check("sum", lambda a: a.sum(), [r((3, 4))]),
        Check("sum axis=1 keepdims", lambda a: a.sum(axis=1, keepdims=True), [r((3, 4, 2))]),
        Check("mean axis=(0,2)", lambda a: a.mean(axis=(0, 2)), [r((3, 4, 2))]),
        Check("max axis=-1", lambda a: a.max(axis=-1), [r((3, 4))]),
        Check("max", lambda a: a.max(), [r((3, 4))]),
        Check("reshape", lambda a: a.reshape(4, 3), [r((3, 4))]),
        Check("transpose", lambda a: a.transpose(2, 0, 1), [r((2, 3, 4))]),
        Check("slice", lambda a: a[1:, ::2], [r((3, 4))]),
        Check("index (repeats)", lambda a: a[np.array([0, 2, 0])], [r((3, 4))]),
        Check("index (NumPy integer)", lambda a: a[np.int64(1), 1:], [r((3, 4))]),
        Check("pad", lambda a: a.pad(((0, 0), (1, 2))), [r((3, 4))]),
        Check("log_softmax", lambda a: F.log_softmax(a, axis=1), [r((4, 5))]),
        Check("cross_entropy", lambda a: F.cross_entropy(a, labels), [r((4, 5))]),
        Check("linear", F.linear, [r((4, 3)), r((5, 3)), r((5,))], names=["x", "weight", "bias"]),
        Check("global_avg_pool2d", F.global_avg_pool2d, [r((2, 3, 4, 5))]),
    ]


def conv_checks(seed: int = 0) -> list[Check]:
    """The textbook conv2d (conv.py) over strides 1/2, padding 0/1, kernels 1/3, non-square input and batch 1."""
    rng = np.random.default_rng(seed)
    r = rng.standard_normal
    cases = [  # (N, C, H, W), O, k, stride, padding
        ((2, 3, 5, 5), 4, 3, 1, 1),
        ((2, 3, 6, 5), 4, 3, 2, 1),
        ((1, 3, 5, 7), 2, 3, 1, 0),
        ((2, 4, 6, 6), 3, 1, 2, 0),
        ((1, 2, 4, 5), 3, 1, 1, 0),
    ]
    checks = []
    for x_shape, out_channels, k, stride, padding in cases:
        fn = lambda x, w, b, s=stride, p=padding: conv2d(x, w, b, stride=s, padding=p)  # noqa: E731
        checks.append(Check(f"conv2d k={k} s={stride} p={padding}", fn,
                            [r(x_shape), r((out_channels, x_shape[1], k, k)), r((out_channels,))],
                            names=["x", "weight", "bias"]))
    return checks


def batch_norm_checks(seed: int = 0) -> list[Check]:
    """The textbook batch_norm (batchnorm.py) on NCHW and NC input, in training and in eval mode."""
    rng = np.random.default_rng(seed)
    r = rng.standard_normal
    checks = []
    for shape in [(4, 3, 2, 3), (5, 3)]:
        for training in (True, False):
            channels = shape[1]
            running_mean, running_var = r(channels) * 0.1, rng.uniform(0.5, 1.5, channels)

            def fn(x, gamma, beta, training=training, mean=running_mean, var=running_var):
                # copies: the check runs the op many times and must not drift the buffers it reads
                return batch_norm(x, gamma, beta, to_device(mean).copy(), to_device(var).copy(),
                                  training=training)

            x = r(shape) * 2 + 1
            mode = "train" if training else "eval"
            checks.append(Check(f"batch_norm {len(shape)}-D {mode}", fn,
                                [x, rng.uniform(0.5, 1.5, channels), r(channels)],
                                names=["x", "gamma", "beta"]))
    return checks


def all_checks(seed: int = 0) -> list[Check]:
    """Every check: the textbook ops; the fast versions' own ops for this backend, where the fast package has
    registered them (minibn/fast/checks.py); then the layers and a tiny ResNet, through whichever
    implementation each op runs (minibn/registry.py)."""
    fast_checks = registry.run_fast("checks", seed) or []
    return op_checks(seed) + conv_checks(seed) + batch_norm_checks(seed) + fast_checks + model_checks(seed)


def model_checks(seed: int = 0):
    """Gradient checks of the layers and of a tiny ResNet (depth 8, width 4) end to end."""
    rng = np.random.default_rng(seed)

    def module_check(name, module, x, loss_of_output):
        module.double()
        params = dict(module.named_parameters())
        return Check(name, lambda x, *ps: loss_of_output(module(x)), [x, *params.values()],
                     names=["x", *params], max_elements=12)

    labels = rng.integers(0, 10, size=4)
    tiny = models.cifar_resnet(8, width=4, seed=seed)
    for module in tiny.modules():  # move BN away from the recipe's gamma ~ 0, beta = 0: ReLU kinks sit there
        if isinstance(module, nn.BatchNorm2d):
            module.weight.data[...] = to_device(rng.uniform(0.5, 1.5, module.weight.shape))
            module.bias.data[...] = to_device(rng.normal(0, 0.5, module.bias.shape))
    return [
        module_check("nn.Conv2d 3x3 s=2 p=1", nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=True, rng=rng),
                     rng.standard_normal((2, 3, 5, 6)), lambda out: out),
        module_check("nn.BatchNorm2d (train)", nn.BatchNorm2d(3, rng=rng), rng.standard_normal((4, 3, 3, 2)),
                     lambda out: out),
        module_check("nn.Linear", nn.Linear(6, 4, rng=rng), rng.standard_normal((3, 6)), lambda out: out),
        module_check("cifar_resnet(8, width=4) + loss", tiny, rng.standard_normal((4, 3, 8, 8)),
                     lambda logits: F.cross_entropy(logits, labels)),
    ]
