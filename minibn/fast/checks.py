"""Gradient checks of the fast paths' own ops, for `minibn gradcheck` and tests/test_gradcheck.py: registered in
minibn/registry.py as "checks", so minibn/checks.py's all_checks() runs them after the textbook ops'.

Each op sits between ToFlat and FromFlat, so that a check perturbs real pixels only (the flat layout's pads are
not inputs: they are always zero).
"""
from __future__ import annotations

import numpy as np

from minibn.backend import backend_name, to_device
from minibn.checks import Check
from minibn.fast.cpu_batchnorm import BatchNormFlat
from minibn.fast.cpu_conv import Conv3x3Flat, ConvStridedFlat
from minibn.fast.gpu import BatchNormFlatGPU, ConvFlatGPU
from minibn.fast.layout import FlatLayout, FromFlat, ToFlat
from minibn.fast.pool import GlobalAvgPoolFlat

LAYOUT, HALF = FlatLayout(2, 5, 4), FlatLayout(2, 3, 2)  # (N, H, W) = (2, 5, 4), and after a stride of 2


def checks_for_this_backend(seed: int = 0) -> list[Check]:
    """The fast CPU path's ops on NumPy, the GPU's flat-layout ops on CuPy."""
    return fast_cpu_checks(seed) if backend_name() == "numpy" else fast_gpu_checks(seed)


def bn_add_relu_check(name: str, flat_op, rng, training: bool) -> Check:
    """flat_op (BatchNormFlat or BatchNormFlatGPU) with a residual and the ReLU, in training or eval mode."""
    def bn_add_relu(x, gamma, beta, residual):
        mean, var = to_device(np.zeros(3)), to_device(np.ones(3))
        out = flat_op.apply(ToFlat.apply(x, layout=LAYOUT), gamma, beta, ToFlat.apply(residual, layout=LAYOUT),
                            layout=LAYOUT, running_mean=mean, running_var=var, training=training, momentum=0.1,
                            eps=1e-5, relu=True)
        return FromFlat.apply(out, layout=LAYOUT)
    r = rng.standard_normal
    inputs = [r((2, 3, 5, 4)) * 2 + 1, rng.uniform(0.5, 1.5, 3), r(3), r((2, 3, 5, 4))]
    return Check(f"{name} + add + relu ({'train' if training else 'eval'})", bn_add_relu, inputs,
                 names=["x", "gamma", "beta", "residual"])


def fast_cpu_checks(seed: int = 0) -> list[Check]:
    """The fast CPU path's ops (cpu_conv.py, cpu_batchnorm.py, pool.py)."""
    rng = np.random.default_rng(seed)
    r = rng.standard_normal

    def conv3x3(x, w):
        return FromFlat.apply(Conv3x3Flat.apply(ToFlat.apply(x, layout=LAYOUT), w, layout=LAYOUT), layout=LAYOUT)

    def strided(x, w):
        out = ConvStridedFlat.apply(ToFlat.apply(x, layout=LAYOUT), w, layout=LAYOUT, out_layout=HALF, stride=2,
                                    padding=w.shape[2] // 2)
        return FromFlat.apply(out, layout=HALF)

    def pool(x):
        return GlobalAvgPoolFlat.apply(ToFlat.apply(x, layout=LAYOUT), layout=LAYOUT)

    return [
        Check("fast_cpu Conv3x3Flat", conv3x3, [r((2, 3, 5, 4)), r((4, 3, 3, 3))], names=["x", "weight"]),
        Check("fast_cpu ConvStridedFlat 3x3 s=2", strided, [r((2, 3, 5, 4)), r((4, 3, 3, 3))], names=["x", "weight"]),
        Check("fast_cpu ConvStridedFlat 1x1 s=2", strided, [r((2, 3, 5, 4)), r((4, 3, 1, 1))], names=["x", "weight"]),
        bn_add_relu_check("fast_cpu BatchNormFlat", BatchNormFlat, rng, training=True),
        bn_add_relu_check("fast_cpu BatchNormFlat", BatchNormFlat, rng, training=False),
        Check("fast_cpu GlobalAvgPoolFlat", pool, [r((2, 3, 5, 4))]),
    ]


def fast_gpu_checks(seed: int = 0) -> list[Check]:
    """The GPU's flat-layout ops (gpu.py), on CuPy."""
    rng = np.random.default_rng(seed)
    r = rng.standard_normal

    def conv(x, w, stride):
        out_layout = LAYOUT if stride == 1 else HALF
        out = ConvFlatGPU.apply(ToFlat.apply(x, layout=LAYOUT), w, layout=LAYOUT, out_layout=out_layout,
                                stride=stride)
        return FromFlat.apply(out, layout=out_layout)

    return [
        Check("fast_gpu ConvFlatGPU 3x3 s=1", lambda x, w: conv(x, w, 1), [r((2, 3, 5, 4)), r((4, 3, 3, 3))],
              names=["x", "weight"]),
        Check("fast_gpu ConvFlatGPU 3x3 s=2", lambda x, w: conv(x, w, 2), [r((2, 3, 5, 4)), r((4, 3, 3, 3))],
              names=["x", "weight"]),
        Check("fast_gpu ConvFlatGPU 1x1 s=2", lambda x, w: conv(x, w, 2), [r((2, 3, 5, 4)), r((4, 3, 1, 1))],
              names=["x", "weight"]),
        bn_add_relu_check("fast_gpu BatchNormFlatGPU", BatchNormFlatGPU, rng, training=True),
        bn_add_relu_check("fast_gpu BatchNormFlatGPU", BatchNormFlatGPU, rng, training=False),
    ]
