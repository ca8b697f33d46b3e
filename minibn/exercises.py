"""Grading the backward passes that students write in lessons/exercises/.

An exercise file sets ``EXERCISE = "<name>"`` and defines the classes named below.
``minibn gradcheck FILE`` imports it, builds float64 checks of the student's
Function classes with random inputs (and a random upstream gradient), and prints
PASS/FAIL with the worst element and a hint.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from minibn.checks import Check

HINTS = {
    "relu": "d relu(x)/dx is 1 where x > 0 and 0 elsewhere: multiply g by that mask (saved in forward).",
    "cross_entropy": "d loss/d logits = (softmax(logits) - onehot(labels)) / N, times the upstream g "
                     "(a scalar here). softmax = exp(log_probs).",
    "linear": "out = x @ W.T + b: dx = g @ W, dW = g.T @ x, db = g summed over the batch axis. "
              "Check each shape against its input's.",
    "conv2d": "dW = g_mat @ cols.T and dcols = W_mat.T @ g_mat with g_mat = g as (O, N*Ho*Wo); "
              "col2im must ADD (+=) each kernel offset's slice back, because patches overlap.",
    "batch_norm": "With xhat = (x - mean) * inv_std: dbeta = sum(g), dgamma = sum(g * xhat), and "
                  "dx = gamma * inv_std / M * (M * g - dbeta - xhat * dgamma), sums over N, H, W.",
}


def load_exercise(path: str):
    """Import a student's file as a module (it may live anywhere)."""
    spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if getattr(module, "EXERCISE", None) not in HINTS:
        raise ValueError(f"{path} must set EXERCISE to one of {', '.join(HINTS)}")
    return module


def exercise_checks(path: str, seed: int = 0) -> list[Check]:
    module = load_exercise(path)
    name = module.EXERCISE
    rng = np.random.default_rng(seed)
    r = rng.standard_normal
    hint = HINTS[name]
    if name == "relu":
        x = r((4, 5))
        x += np.sign(x) * 0.1  # away from the kink at 0
        return [Check("relu", module.ReLU.apply, [x], hint=hint)]
    if name == "cross_entropy":
        labels = rng.integers(0, 6, size=5)
        return [Check("cross_entropy", lambda z: module.CrossEntropy.apply(z, labels=labels), [r((5, 6))],
                      hint=hint)]
    if name == "linear":
        return [Check("linear", module.Linear.apply, [r((4, 3)), r((5, 3)), r((5,))], names=["x", "weight", "bias"],
                      hint=hint)]
    if name == "conv2d":
        checks = []
        for x_shape, out_channels, k, stride, padding in [((2, 3, 5, 5), 4, 3, 1, 1), ((2, 2, 6, 5), 3, 3, 2, 1),
                                                          ((1, 3, 4, 4), 2, 1, 1, 0)]:
            fn = lambda x, w, s=stride, p=padding: module.Conv2d.apply(x, w, stride=s, padding=p)  # noqa: E731
            checks.append(Check(f"conv2d k={k} s={stride} p={padding}", fn,
                                [r(x_shape), r((out_channels, x_shape[1], k, k))], names=["x", "weight"], hint=hint))
        return checks
    # batch_norm
    def bn(x, gamma, beta):
        return module.BatchNorm.apply(x, gamma, beta)
    return [Check("batch_norm (train, NCHW)", bn,
                  [r((4, 3, 2, 3)) * 2 + 1, rng.uniform(0.5, 1.5, 3), r(3)], names=["x", "gamma", "beta"], hint=hint)]


