# %%
"""Lesson 01: autograd from scratch, then minibn's Tensor
======================================================

What you learn: how reverse-mode differentiation works. We build a tiny engine on scalars
(about 40 lines), then see that minibn's Tensor does the same on whole arrays.

Run::

    python lessons/01_autograd_from_scratch.py        (a few seconds)

Look: the table (both engines agree to the last digit) and out/01_autograd/derivative.png.
"""
# %%
import math

import numpy as np

from common import console, lesson_args, plt, save, table

args = lesson_args("01_autograd", __doc__)


# %% [markdown]
# A `Value` remembers its inputs and a function that pushes its gradient to them. `backward`
# orders the graph so each node comes after everything that uses it, then runs those functions.
# %%
class Value:
    def __init__(self, data, parents=()):
        self.data, self.grad, self.parents = data, 0.0, parents
        self.push_grad = lambda: None  # set by the op that made this value

    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data + other.data, (self, other))

        def push_grad():  # d(a+b)/da = 1, d(a+b)/db = 1
            self.grad += out.grad
            other.grad += out.grad
        out.push_grad = push_grad
        return out

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data * other.data, (self, other))

        def push_grad():  # d(ab)/da = b, d(ab)/db = a; += because a value may be used twice
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad
        out.push_grad = push_grad
        return out

    def tanh(self):
        t = math.tanh(self.data)
        out = Value(t, (self,))

        def push_grad():  # d tanh(a)/da = 1 - tanh(a)^2
            self.grad += (1 - t * t) * out.grad
        out.push_grad = push_grad
        return out

    def backward(self):
        order, seen, stack = [], set(), [(self, False)]
        while stack:  # iterative depth-first search: no recursion limit for deep graphs
            node, done = stack.pop()
            if done:
                order.append(node)
            elif id(node) not in seen:
                seen.add(id(node))
                stack.append((node, True))
                stack.extend((p, False) for p in node.parents)
        self.grad = 1.0
        for node in reversed(order):
            node.push_grad()


# %% [markdown]
# f(x, w) = tanh(w * x + x * x): x is used twice, so its gradient has two parts.
# %%
def f_scalar(x, w):
    return (w * x + x * x).tanh()


x, w = Value(0.7), Value(-1.3)
y = f_scalar(x, w)
y.backward()

from minibn import Tensor, to_host  # noqa: E402

xt, wt = Tensor(np.array(0.7), requires_grad=True), Tensor(np.array(-1.3), requires_grad=True)
s = wt * xt + xt * xt
yt = (s.exp() - (-s).exp()) / (s.exp() + (-s).exp())  # tanh from exp: minibn has no tanh op
yt.backward()

analytic_dx = (1 - math.tanh(-1.3 * 0.7 + 0.49) ** 2) * (-1.3 + 2 * 0.7)
table("d f / d x and d f / d w", ["engine", "f", "df/dx", "df/dw"], [
    ["scalar Value", y.data, x.grad, w.grad],
    ["minibn Tensor", yt.item(), xt.grad.item(), wt.grad.item()],
    ["by hand", y.data, analytic_dx, (1 - y.data ** 2) * 0.7],
])

# %% [markdown]
# The same engine on arrays: minibn differentiates f at 200 points at once. The derivative it
# returns matches the slope of f.
# %%
xs = np.linspace(-2, 2, 21 if args.smoke else 200)
xt = Tensor(xs, requires_grad=True)
s = xt * -1.3 + xt * xt
ft = (s.exp() - (-s).exp()) / (s.exp() + (-s).exp())
ft.sum().backward()  # sum: each f(x_i) depends only on x_i, so d sum / d x_i = f'(x_i)
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(xs, ft.numpy(), label="f(x) = tanh(-1.3 x + x^2)")
ax.plot(xs, to_host(xt.grad), label="df/dx from backward()")  # to_host: a GPU array must be copied back to plot
ax.plot(xs[:-1] + (xs[1] - xs[0]) / 2, np.diff(ft.numpy()) / np.diff(xs), "k:", label="slope of f (finite differences)")
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
save(fig, args.out, "derivative.png")
console.print("Both engines agree: reverse mode is the chain rule applied from the output back.")

# %% [markdown]
# Each minibn op is a `Function`: `forward(ctx, x)` computes on arrays and saves what the backward
# needs; `backward(ctx, g)` gets g = dL/d(output) and returns dL/d(input). The contract of every
# backward: it never writes into g, nor into the arrays forward saved; it returns new arrays. The
# same g often goes to two places: `a + b` hands a and b the very same array, so in a residual
# network (lesson 06) a `g *= mask` in one branch would silently change the other branch's gradient.
# On NumPy the engine hands backward read-only arrays, so the write stops at once with an error
# that says why; `minibn.gradcheck` (lesson 02) and the exercise grader catch it on every backend.
# Below, a backward whose numbers are right (d(2x)/dx = 2) but that breaks the contract.
# %%
from minibn import BackwardContractError, Function, gradcheck  # noqa: E402


class TimesTwo(Function):
    """out = 2 x.  dx = 2 g."""

    @staticmethod
    def forward(ctx, x):
        return 2 * x

    @staticmethod
    def backward(ctx, g):
        g *= 2  # breaks the contract: write `return 2 * g` instead
        return g


try:
    gradcheck(TimesTwo.apply, [np.ones(3)])
except BackwardContractError as error:
    console.print(f"[red]refused:[/red] {error}")
