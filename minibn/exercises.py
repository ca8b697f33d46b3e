"""The exercises of lessons/exercises/: what each checks, and hints that teach without telling.

An exercise file sets ``EXERCISE = "<name>"`` and defines what that exercise asks for (a Function
with a backward, or a function). ``minibn gradcheck FILE`` imports it, in a process of its own
(minibn/submission.py), and runs the checks below:
gradient checks of a backward in float64 with a random upstream gradient, or value checks of a
forward against a reference. Each exercise has three hints, from what the gradient depends on
(level 1) to how to organize the code (level 3); none gives the final formula or code: those, with
the whole derivation, are in the reference solutions (tests/exercise_solutions/), for instructors.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from minibn.backend import to_device
from minibn.checks import Check, ValueCheck


@dataclass
class Exercise:
    title: str
    checks: Callable[[object, np.random.Generator], list]  # (student's module, rng) -> checks
    hints: tuple[str, str, str]


def _relu(module, rng):
    x = rng.standard_normal((4, 5))
    x += np.sign(x) * 0.1  # away from the kink at 0
    return [Check("relu", module.ReLU.apply, [x])]


def _cross_entropy(module, rng):
    labels = rng.integers(0, 6, size=5)
    return [Check("cross_entropy", lambda z: module.CrossEntropy.apply(z, labels=labels),
                  [rng.standard_normal((5, 6))])]


def _linear(module, rng):
    r = rng.standard_normal
    return [Check("linear", module.Linear.apply, [r((4, 3)), r((5, 3)), r((5,))], names=["x", "weight", "bias"])]


CONV_CASES = [((2, 3, 5, 5), 4, 3, 1, 1), ((2, 2, 6, 5), 3, 3, 2, 1), ((1, 3, 4, 4), 2, 1, 1, 0)]  # x, O, k, s, p


def _conv2d(module, rng):
    checks = []
    for x_shape, out_channels, k, stride, padding in CONV_CASES:
        fn = lambda x, w, s=stride, p=padding: module.Conv2d.apply(x, w, stride=s, padding=p)  # noqa: E731
        checks.append(Check(f"conv2d k={k} s={stride} p={padding}", fn, [rng.standard_normal(x_shape),
                            rng.standard_normal((out_channels, x_shape[1], k, k))], names=["x", "weight"]))
    return checks


def _batch_norm(module, rng):
    return [Check("batch_norm (train, NCHW)", lambda x, gamma, beta: module.BatchNorm.apply(x, gamma, beta),
                  [rng.standard_normal((4, 3, 2, 3)) * 2 + 1, rng.uniform(0.5, 1.5, 3), rng.standard_normal(3)],
                  names=["x", "gamma", "beta"])]


def _im2col(module, rng):
    """The student's im2col, then one matrix multiply, against the definition: conv2d_naive's loops."""
    from minibn.conv import conv2d_naive
    checks = []
    for x_shape, out_channels, k, stride, padding in CONV_CASES + [((2, 3, 7, 6), 4, 3, 2, 0)]:
        x, w = rng.standard_normal(x_shape), rng.standard_normal((out_channels, x_shape[1], k, k))

        def compute(x=x, w=w, k=k, stride=stride, padding=padding):
            cols = module.im2col(to_device(x), k, k, stride, padding)
            expected = conv2d_naive(x, w, stride=stride, padding=padding)  # (N, O, Ho, Wo)
            n, o, ho, wo = expected.shape
            if tuple(cols.shape) != (x.shape[1], k, k, n, ho, wo):
                return [("cols", cols, np.zeros((x.shape[1], k, k, n, ho, wo)))]  # reported as a shape error
            out = to_device(w).reshape(o, -1) @ cols.reshape(-1, n * ho * wo)
            return [("conv output", out.reshape(o, n, ho, wo).transpose(1, 0, 2, 3), expected)]
        checks.append(ValueCheck(f"im2col k={k} s={stride} p={padding}", compute))
    return checks


def _sgd(module, rng):
    """Three steps of the student's update against minibn.optim.SGD, from an empty momentum buffer."""
    from minibn.nn import Parameter
    from minibn.optim import SGD

    def compute(mask):
        start, grads = rng.standard_normal((3, 4)), [rng.standard_normal((3, 4)) for _ in range(3)]
        reference = Parameter(start.copy())
        reference.mask = None if mask is None else to_device(mask)
        optimizer = SGD([reference], lr=0.1, momentum=0.9, weight_decay=0.01)
        param, buffer, pairs = to_device(start.copy()), None, []
        for step, grad in enumerate(grads, 1):
            reference.grad = to_device(grad)
            optimizer.step()
            buffer = module.sgd_step(param, to_device(grad), buffer, lr=0.1, momentum=0.9, weight_decay=0.01,
                                     mask=None if mask is None else to_device(mask))
            pairs += [(f"param after step {step}", param.copy(), reference.data.copy()),
                      (f"momentum buffer after step {step}", None if buffer is None else buffer.copy(),
                       optimizer.momentum_buffers[0].copy())]
        return pairs
    mask = (rng.random((3, 4)) < 0.5).astype(np.float64)
    return [ValueCheck("sgd_step, no mask", lambda: compute(None)), ValueCheck("sgd_step, mask", lambda: compute(mask))]


EXERCISES = {
    "relu": Exercise("ReLU backward", _relu, (
        "ReLU passes some inputs through and blocks the others. The gradient of each element depends only on "
        "that element: what is the slope of max(x, 0) left of 0, and right of it?",
        "The backward multiplies the upstream gradient g, element by element, by that local slope; the slope "
        "comes from the input saved in forward, and the result has x's shape.",
        "A comparison on the saved input gives an array of 0s and 1s (NumPy turns True into 1). Do not return the "
        "slope alone: the chain rule needs g too.")),
    "cross_entropy": Exercise("softmax cross-entropy backward", _cross_entropy, (
        "The loss is a mean over the N rows of -log softmax(logits)[label]. Each row's term depends only on that "
        "row's logits, so the gradient has the logits' shape (N, K), and every row is scaled by the mean's 1/N.",
        "Write one row's term as -z[y] + log(sum_j exp(z[j])) and differentiate with respect to z[k]: one part "
        "comes from the log-sum-exp, the other only from the label's own logit.",
        "The derivative of log-sum-exp is the softmax, which the saved log-probabilities give back through exp. "
        "Then treat the label's column of each row, the 1/N of the mean, and the upstream scalar g.")),
    "linear": Exercise("linear layer backward", _linear, (
        "out = x @ W.T + b. Each gradient has its input's shape: dx (N, in), dW (out, in), db (out,). Write the "
        "shapes down before any formula.",
        "out[n, o] = sum_i x[n, i] W[o, i] + b[o]. d out[n, o] / d x[n, i] is W[o, i] for every o, "
        "d out[n, o] / d W[o, i] is x[n, i] for every n, and b[o] is added to every row n.",
        "So each of dx and dW is a matrix product of g with one saved array, summing over the index the two "
        "share; transpose where the shapes ask for it. The bias collects g over the batch.")),
    "conv2d": Exercise("col2im and the convolution's backward", _conv2d, (
        "The forward is im2col, then one matrix multiply, then a reshape. Go back through them in reverse: the "
        "matrix multiply gives the weight's gradient and the columns' gradient; col2im turns the columns' "
        "gradient into the input's.",
        "The matrix-multiply part is the linear layer's backward, with the column matrix as the input. Reshape g "
        "to (O, N*Ho*Wo) with the channel axis first, so that its columns line up with those of cols.",
        "Patches overlap, so one pixel was copied into several columns, and its gradient collects all of those "
        "entries. Loop over the kernel offsets as im2col does, with the same strided slices, accumulate into the "
        "padded gradient, and cut the padding off at the end.")),
    "batch_norm": Exercise("BatchNorm backward (training mode)", _batch_norm, (
        "xhat depends on x directly and through the batch mean and variance, which depend on every x of the "
        "channel: each x's gradient gathers contributions from its whole channel. dgamma and dbeta are sums over "
        "the axes the statistics use (N, H, W).",
        "Go one step at a time: dxhat from g and gamma; then through the division by the standard deviation "
        "(the variance depends on x); then through the subtraction of the mean. Lesson 05 builds the same "
        "function from small ops: compare each of your steps with autograd's.",
        "Simplified, dx needs only per-channel sums (of g, and of g times xhat), the count M, gamma, inv_std and "
        "xhat. Reshape (C,) arrays to (1, C, 1, 1) so that they broadcast over N, H, W.")),
    "im2col": Exercise("im2col (the forward gather)", _im2col, (
        "cols[c, i, j, n, y, x] is the input pixel that kernel offset (i, j) of output pixel (y, x) reads. Pad the "
        "input first: then every offset reads a regular grid of pixels, with no edge cases.",
        "For offset (i, j), output pixel (y, x) reads padded row y * stride + i and column x * stride + j. Over all "
        "y and x that is one strided slice of the padded input.",
        "Loop over the kh * kw offsets only, never over pixels: each copies one slice into cols[:, i, j]. Mind the "
        "axis order: cols has channels first and the batch after the offsets, so move the input's N and C axes.")),
    "sgd": Exercise("SGD with momentum, weight decay and a mask", _sgd, (
        "One step, for every element: add the weight decay to the gradient, keep only the trainable elements (the "
        "mask), update the momentum buffer, and move the parameter against the buffer.",
        "Weight decay is L2: it adds weight_decay times the parameter to the gradient. The momentum buffer "
        "remembers past updates; on the very first step there is none yet, and it starts from the current "
        "update alone.",
        "Change param and the buffer in place (the optimizer keeps both), and return the buffer, the one you made "
        "on the first step too. Apply the mask before the buffer, so that masked elements never move.")),
}


def load_exercise(path: str):
    """Import a student's file as a module (it may live anywhere)."""
    spec = importlib.util.spec_from_file_location(Path(path).stem, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if getattr(module, "EXERCISE", None) not in EXERCISES:
        raise ValueError(f"{path} must set EXERCISE to one of {', '.join(EXERCISES)}")
    return module

