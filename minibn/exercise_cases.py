"""What each exercise is checked on, how a student's file runs on it, and the reference that decides.

A case is a dict of named arrays drawn from the grading run's seed (integers such as a stride are
0-d arrays). The grader sends a copy to the student's process (minibn/student_process.py), which
runs the student's code on it with ``RUNS[exercise]`` and sends back named arrays only. The grader
then compares them with what the instructor's reference computes from the grader's own copy:

  GradCase   the student's forward output against the reference forward's, and the gradient of each
             input, for the random upstream gradient ``g``, against the reference backward's (which is
             itself checked against central differences of the reference forward, in float64);
  ValueCase  arrays (im2col's columns times a weight, SGD's parameter and buffer) against the reference.

So a submission whose forward and backward compute nothing fails: nothing it returns is compared
with anything it computed itself.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Callable

import numpy as np

from minibn import functional, ops
from minibn.backend import to_device, to_host
from minibn.batchnorm import BatchNorm
from minibn.checks import away_from_zero
from minibn.conv import Conv2d, conv2d_naive
from minibn.gradcheck import gradcheck
from minibn.tensor import Tensor, no_grad

LR, MOMENTUM, WEIGHT_DECAY = 0.1, 0.9, 0.01  # the SGD exercise's settings
CONV_CASES = [((2, 3, 5, 5), 4, 3, 1, 1), ((2, 2, 6, 5), 3, 3, 2, 1), ((1, 3, 4, 4), 2, 1, 1, 0)]  # x, O, k, s, p


@dataclass
class GradCase:
    name: str
    inputs: dict[str, np.ndarray]   # sent to the student; "g" is the upstream gradient
    wrt: tuple[str, ...]            # the inputs whose gradients are checked
    call: Callable                  # (module holding the Function, inputs as Tensors/arrays) -> Tensor
    _reference: dict | None = field(default=None, repr=False)

    def reference(self) -> dict[str, np.ndarray]:
        """The reference forward's output and backward's gradients ("grad x", ...), computed once per run."""
        if self._reference is None:
            self._reference = _reference_gradients(self)
        return self._reference


@dataclass
class ValueCase:
    name: str
    inputs: dict[str, np.ndarray]
    expected: Callable[[dict], list]  # (the student's arrays) -> (name, yours, expected) triples


# ---- the instructor's reference: minibn's own textbook ops, called as the exercises call theirs ------------------
class _BatchNormTrainingMode:
    """minibn's BatchNorm op with the exercise's signature: batch statistics, eps 1e-5."""

    @staticmethod
    def apply(x, gamma, beta):
        c = x.shape[1]
        return BatchNorm.apply(x, gamma, beta, running_mean=np.zeros(c), running_var=np.ones(c), training=True,
                               eps=1e-5)


FUNCTIONS = {"relu": "ReLU", "cross_entropy": "CrossEntropy", "linear": "Linear", "conv2d": "Conv2d",
             "batch_norm": "BatchNorm"}  # exercise -> the Function its file defines
REFERENCE = SimpleNamespace(ReLU=ops.ReLU, CrossEntropy=functional.CrossEntropy, Linear=functional.Linear,
                            Conv2d=Conv2d, BatchNorm=_BatchNormTrainingMode)


def _reference_gradients(case: GradCase) -> dict[str, np.ndarray]:
    """Output and gradients of the reference (NumPy, float64) for the case's upstream gradient ``g``; its backward
    must also pass minibn.gradcheck (central differences of its forward, in float64), or the grader stops."""
    arrays = {name: np.array(value, dtype=np.float64 if name in case.wrt else value.dtype)
              for name, value in case.inputs.items()}
    tensors = {name: Tensor(a, requires_grad=True) if name in case.wrt else a for name, a in arrays.items()}
    out = case.call(REFERENCE, tensors)
    out.backward(case.inputs["g"].copy())
    result = {"output": np.array(out.data), **{f"grad {name}": np.array(tensors[name].grad) for name in case.wrt}}

    def reference(*differentiated):
        return case.call(REFERENCE, {**arrays, **dict(zip(case.wrt, differentiated))})
    for check in gradcheck(reference, [arrays[name] for name in case.wrt], names=case.wrt):
        if not check.passed:
            raise RuntimeError(f"minibn's reference for {case.name} disagrees with central differences on {check.name}")
    return result


# ---- the cases: inputs from the run's seed -------------------------------------------------------------------------
def _grad_case(name, call, wrt, rng, **inputs) -> GradCase:
    with no_grad():
        out = call(REFERENCE, {k: Tensor(np.asarray(v, dtype=np.float64)) if k in wrt else v for k, v in inputs.items()})
    return GradCase(name, {**inputs, "g": rng.standard_normal(out.shape)}, tuple(wrt), call)


def _call_relu(m, t):
    return m.ReLU.apply(t["x"])


def _call_cross_entropy(m, t):
    return m.CrossEntropy.apply(t["logits"], labels=to_device(t["labels"]))


def _call_linear(m, t):
    return m.Linear.apply(t["x"], t["weight"], t["bias"])


def _call_conv2d(m, t):
    return m.Conv2d.apply(t["x"], t["weight"], stride=int(t["stride"]), padding=int(t["padding"]))


def _call_batch_norm(m, t):
    return m.BatchNorm.apply(t["x"], t["gamma"], t["beta"])


def _relu(rng):
    return [_grad_case("relu", _call_relu, ["x"], rng, x=away_from_zero(rng, 4, 5))]


def _cross_entropy(rng):
    return [_grad_case("cross_entropy", _call_cross_entropy, ["logits"], rng, logits=rng.standard_normal((5, 6)),
                       labels=rng.integers(0, 6, size=5))]


def _linear(rng):
    r = rng.standard_normal
    return [_grad_case("linear", _call_linear, ["x", "weight", "bias"], rng, x=r((4, 3)), weight=r((5, 3)),
                       bias=r((5,)))]


def _conv2d(rng):
    return [_grad_case(f"conv2d k={k} s={s} p={p}", _call_conv2d, ["x", "weight"], rng, x=rng.standard_normal(shape),
                       weight=rng.standard_normal((o, shape[1], k, k)), stride=np.array(s), padding=np.array(p))
            for shape, o, k, s, p in CONV_CASES]


def _batch_norm(rng):
    return [_grad_case("batch_norm (train, NCHW)", _call_batch_norm, ["x", "gamma", "beta"], rng,
                       x=rng.standard_normal((4, 3, 2, 3)) * 2 + 1, gamma=rng.uniform(0.5, 1.5, 3),
                       beta=rng.standard_normal(3))]


def _im2col(rng):
    """The student's columns, times a weight the student never sees, against the definition: conv2d_naive."""
    cases = []
    for shape, o, k, s, p in CONV_CASES + [((2, 3, 7, 6), 4, 3, 2, 0)]:
        x, w = rng.standard_normal(shape), rng.standard_normal((o, shape[1], k, k))

        def expected(yours, x=x.copy(), w=w, k=k, s=s, p=p):
            reference = conv2d_naive(x, w, stride=s, padding=p)  # (N, O, Ho, Wo)
            n, o, ho, wo = reference.shape
            cols = yours.get("cols")
            if cols is None or cols.shape != (x.shape[1], k, k, n, ho, wo):
                return [("cols", cols, np.zeros((x.shape[1], k, k, n, ho, wo)))]  # reported as a shape error
            out = w.reshape(o, -1) @ cols.astype(np.float64).reshape(-1, n * ho * wo)
            return [("conv output", out.reshape(o, n, ho, wo).transpose(1, 0, 2, 3), reference)]
        cases.append(ValueCase(f"im2col k={k} s={s} p={p}", {"x": x, "kernel": np.array(k), "stride": np.array(s),
                                                              "padding": np.array(p)}, expected))
    return cases


def _sgd(rng):
    """Three steps of the student's update against minibn.optim.SGD, from an empty momentum buffer."""
    from minibn.nn import Parameter
    from minibn.optim import SGD

    def case(name, mask):
        start, grads = rng.standard_normal((3, 4)), rng.standard_normal((3, 3, 4))

        def expected(yours, start=start.copy(), grads=grads.copy(), mask=None if mask is None else mask.copy()):
            reference = Parameter(start.copy())
            reference.mask = mask
            optimizer, triples = SGD([reference], lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY), []
            for step, grad in enumerate(grads, 1):
                reference.grad = grad.copy()
                optimizer.step()
                triples += [(f"param after step {step}", yours.get(f"param {step}"), reference.data.copy()),
                            (f"momentum buffer after step {step}", yours.get(f"buffer {step}"),
                             optimizer.momentum_buffers[0].copy())]
            return triples
        inputs = {"start": start, "grads": grads, **({} if mask is None else {"mask": mask})}
        return ValueCase(name, inputs, expected)
    return [case("sgd_step, no mask", None), case("sgd_step, mask", (rng.random((3, 4)) < 0.5).astype(np.float64))]


CASES = {"relu": _relu, "cross_entropy": _cross_entropy, "linear": _linear, "conv2d": _conv2d,
         "batch_norm": _batch_norm, "im2col": _im2col, "sgd": _sgd}


# ---- the student's side: run in the student's process, on the backend being graded ---------------------------------
def _run_function(call):
    """Forward the student's Function on Tensors of the inputs, backward the upstream gradient; send the output,
    each input's gradient, and the gradient it was handed (so the grader sees a backward that wrote into it)."""
    def run(module, inputs, wrt):
        tensors = {k: Tensor(to_device(v), requires_grad=True) if k in wrt else v for k, v in inputs.items() if k != "g"}
        out = call(module, tensors)
        handed = to_device(inputs["g"])
        out.backward(handed)
        grads = {f"grad {k}": to_host(tensors[k].grad) for k in wrt if tensors[k].grad is not None}
        return {"output": to_host(out.data), "g": to_host(handed), **grads}
    return run


def _run_im2col(module, inputs, wrt):
    k, s, p = (int(inputs[name]) for name in ("kernel", "stride", "padding"))
    return {"cols": to_host(module.im2col(to_device(inputs["x"]), k, k, s, p))}


def _run_sgd(module, inputs, wrt):
    param, buffer, mask, sent = to_device(inputs["start"]), None, inputs.get("mask"), {}
    for step, grad in enumerate(inputs["grads"], 1):
        buffer = module.sgd_step(param, to_device(grad), buffer, lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY,
                                 mask=None if mask is None else to_device(mask))
        sent[f"param {step}"] = to_host(param).copy()
        if buffer is not None:
            sent[f"buffer {step}"] = to_host(buffer).copy()
    return sent


RUNS = {"relu": _run_function(_call_relu), "cross_entropy": _run_function(_call_cross_entropy),
        "linear": _run_function(_call_linear), "conv2d": _run_function(_call_conv2d),
        "batch_norm": _run_function(_call_batch_norm), "im2col": _run_im2col, "sgd": _run_sgd}
WRT = {"relu": ("x",), "cross_entropy": ("logits",), "linear": ("x", "weight", "bias"), "conv2d": ("x", "weight"),
       "batch_norm": ("x", "gamma", "beta"), "im2col": (), "sgd": ()}
