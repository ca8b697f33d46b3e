# %%
"""Lesson 02: gradient checking: float32 vs float64, and the choice of eps
=======================================================================

What you learn: how to test a backward pass against central differences, why it must be done in
float64, and why eps around 1e-6 is right (too big: truncation error; too small: round-off).

Run::

    python lessons/02_gradient_checking.py        (a few seconds)

Look: the error-vs-eps figure (out/02_gradient_checking/eps.png): a V whose bottom moves with dtype.
"""
# %%
import numpy as np
from common import console, lesson_args, plt, save, table  # first: it finds minibn in a checkout

import minibn
from minibn import Tensor, to_host
from minibn import functional as F

args = lesson_args("02_gradient_checking", __doc__)
rng = np.random.default_rng(0)


# %% [markdown]
# The checked function: a small softmax cross-entropy, d loss / d logits known in closed form.
# %%
logits = rng.standard_normal((4, 5))
labels = np.array([0, 3, 1, 4])


def exact_gradient():
    t = Tensor(logits, requires_grad=True)
    F.cross_entropy(t, labels).backward()
    return t.grad


def central_difference(dtype, eps, index=(1, 2)):
    z = logits.astype(dtype)
    plus, minus = z.copy(), z.copy()
    plus[index] += dtype(eps)
    minus[index] -= dtype(eps)
    f = lambda a: float(F.cross_entropy(Tensor(a), labels).data)  # noqa: E731
    return (f(plus) - f(minus)) / (2 * eps)


exact = to_host(exact_gradient())[1, 2]  # a host number: the errors below are plain floats
eps_values = np.logspace(-12, -1, 12 if args.smoke else 45)
errors = {dtype.__name__: [abs(central_difference(dtype, e) - exact) for e in eps_values]
          for dtype in (np.float32, np.float64)}

# %%
fig, ax = plt.subplots(figsize=(6, 4))
for name, errs in errors.items():
    ax.loglog(eps_values, np.maximum(errs, 1e-17), marker=".", label=name)
ax.set(xlabel="eps", ylabel="|numerical - exact|", title="central-difference error")
ax.axvline(1e-6, color="gray", ls=":", label="eps = 1e-6 (minibn.gradcheck)")
ax.legend()
ax.grid(alpha=0.3)
save(fig, args.out, "eps.png")
best = {name: eps_values[int(np.argmin(errs))] for name, errs in errors.items()}
table("best eps and its error", ["dtype", "best eps", "error there", "error at eps=1e-6"],
      [[name, best[name], min(errs), errs[int(np.argmin(abs(eps_values - 1e-6)))]] for name, errs in errors.items()])

# %% [markdown]
# minibn.gradcheck does this for every element, with a random upstream gradient, and refuses
# float32 inputs. A wrong backward (x instead of 2x for x**2) fails clearly.
# %%
(good,) = minibn.gradcheck(lambda t: t ** 2, [rng.standard_normal((3, 3))])


class SquareWrong(minibn.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        return g * x  # forgot the factor 2


(bad,) = minibn.gradcheck(SquareWrong.apply, [rng.standard_normal((3, 3))])
table("gradcheck verdicts", ["op", "max abs err", "max rel err", "worst element", "result"],
      [["x**2", good.max_abs_err, good.max_rel_err, good.worst_index, "PASS" if good.passed else "FAIL"],
       ["x**2 with a wrong backward", bad.max_abs_err, bad.max_rel_err, bad.worst_index,
        "PASS" if bad.passed else "FAIL"]])
console.print("Relative errors near 1e-7 or below mean a correct float64 backward; 1e-2 means a bug.")
