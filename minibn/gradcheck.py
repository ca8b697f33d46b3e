"""Check a backward pass against central differences, in float64.

For an op f and a random upstream gradient u, the backward must give
d(sum(f(x) * u))/dx. The checker compares that with the numerical derivative

    (sum(f(x + eps e_i) * u) - sum(f(x - eps e_i) * u)) / (2 eps)

for every element i (or a random sample of them). A random u, not all ones,
means that a transposed or permuted gradient cannot pass by symmetry.

The backward cannot fool the check by changing u: it gets its own copy (read-only on NumPy,
so that a write fails at once), the finite differences use the checker's own u, which no
student code ever sees, and on any backend a copy that came back changed is reported.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from minibn import backend
from minibn.tensor import BackwardContractError, Tensor, no_grad


@dataclass
class GradcheckResult:
    """The verdict for one input: worst errors, where they are, and pass/fail."""
    name: str
    shape: tuple
    max_abs_err: float
    max_rel_err: float
    worst_index: tuple
    analytic: float
    numeric: float
    checked: int
    passed: bool


def rel_error(a, b) -> float:
    """max |a - b| / max(|a| + |b|, 1e-12): about 1e-7 or less is a correct float64 gradient."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), 1e-12)))


def compare(yours: np.ndarray, expected: np.ndarray, atol: float, rtol: float) -> tuple[float, float, int, bool]:
    """(max abs error, max rel error, flat index of the worst element, passed) of ``yours`` against
    ``expected``, two 1-D float arrays. An element passes if |yours - expected| <= atol + rtol |expected|."""
    abs_err = np.abs(yours - expected)
    rel_err = abs_err / np.maximum(np.abs(yours) + np.abs(expected), atol)  # tiny values: no 0/0
    worst = int(np.argmax(abs_err - rtol * np.abs(expected)))
    return float(abs_err.max()), float(rel_err.max()), worst, bool(np.all(abs_err <= atol + rtol * np.abs(expected)))


def gradcheck(fn: Callable[..., Tensor], inputs: Sequence, *, eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-3, max_elements: int | None = None, seed: int = 0,
              names: Sequence[str] | None = None) -> list[GradcheckResult]:
    """Compare ``fn``'s backward with central differences for every input that requires grad.

    ``inputs``: Tensors (used as they are, so a model's own parameters can be passed) or
    arrays (wrapped as float64 Tensors that require grad). ``fn(*inputs)`` returns a Tensor.
    An element passes if |analytic - numeric| <= atol + rtol * |numeric|.
    ``max_elements``: check at most this many randomly chosen elements of each input.
    Returns one GradcheckResult per checked input.
    """
    tensors = [x if isinstance(x, Tensor) else Tensor(backend.to_device(x, dtype=np.float64), requires_grad=True)
               for x in inputs]
    names = list(names) if names is not None else [f"input {i}" for i in range(len(tensors))]
    for name, t in zip(names, tensors):
        if t.requires_grad and t.dtype != np.float64:
            raise TypeError(f"gradcheck needs float64 inputs, but {name} is {t.dtype}; "
                            "float32 round-off swamps the finite differences (use .double())")
    rng = np.random.default_rng(seed)

    for t in tensors:
        t.grad = None
    out = fn(*tensors)
    upstream = rng.standard_normal(out.shape)  # the checker's own: the finite differences use it
    handed = backend.to_device(upstream.copy())  # what the backward gets (the engine makes it read-only on NumPy)
    op = out._ctx.fn.__name__ if out._ctx is not None and out._ctx.fn is not None else "the op"
    out.backward(handed)
    if not np.array_equal(backend.to_host(handed), upstream):  # on CuPy, where no array is read-only
        raise BackwardContractError(op, "the gradient it received")
    upstream = backend.to_device(upstream)

    def weighted_output() -> float:
        with no_grad():
            return float((fn(*tensors).data * upstream).sum())

    results = []
    for name, t in zip(names, tensors):
        if not t.requires_grad:
            continue
        analytic = backend.to_host(t.grad) if t.grad is not None else np.zeros(t.shape)
        flat = np.arange(t.size)
        if max_elements is not None and t.size > max_elements:
            flat = np.sort(rng.choice(t.size, size=max_elements, replace=False))
        numeric = np.empty(len(flat))
        for k, i in enumerate(flat):
            index = np.unravel_index(i, t.shape)
            original = t.data[index].item()
            t.data[index] = original + eps
            plus = weighted_output()
            t.data[index] = original - eps
            minus = weighted_output()
            t.data[index] = original
            numeric[k] = (plus - minus) / (2 * eps)
        picked = analytic.reshape(-1)[flat]
        max_abs, max_rel, worst, passed = compare(picked, numeric, atol, rtol)
        results.append(GradcheckResult(
            name=name, shape=t.shape, max_abs_err=max_abs, max_rel_err=max_rel,
            worst_index=tuple(int(i) for i in np.unravel_index(flat[worst], t.shape)),
            analytic=float(picked[worst]), numeric=float(numeric[worst]), checked=len(flat), passed=passed))
    return results
