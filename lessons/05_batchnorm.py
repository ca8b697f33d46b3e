# %%
"""Lesson 05: BatchNorm: a staged derivation versus the fused op, train versus eval
================================================================================

What you learn: BatchNorm normalizes each channel with the batch's mean and variance, then scales
by gamma and shifts by beta. Built from small ops, autograd differentiates it for us (staged); the
fused op does it with one formula (see minibn/batchnorm.py): same numbers, fewer passes. In eval
mode it uses running statistics gathered during training.

Run::

    python lessons/05_batchnorm.py        (seconds)

Look: the agreement table, the timing, and out/05_batchnorm/running_stats.png.
"""
# %%
import time

import numpy as np
from common import console, lesson_args, plt, save, table

from minibn import Tensor, synchronize, to_device, to_host
from minibn import functional as F

args = lesson_args("05_batchnorm", __doc__)
rng = np.random.default_rng(0)


# %% [markdown]
# Staged: every step is an ordinary op with its own backward; autograd chains them.
# %%
def batch_norm_staged(x, gamma, beta, eps=1e-5):
    mean = x.mean(axis=(0, 2, 3), keepdims=True)               # (1, C, 1, 1)
    centered = x - mean
    var = (centered * centered).mean(axis=(0, 2, 3), keepdims=True)
    xhat = centered / (var + eps).sqrt()
    return xhat * gamma.reshape(1, -1, 1, 1) + beta.reshape(1, -1, 1, 1)


shape = (4, 3, 5, 5) if args.smoke else (64, 16, 32, 32)
x_data = rng.standard_normal(shape) * 3 + 2
gamma_data, beta_data = rng.uniform(0.5, 1.5, shape[1]), rng.standard_normal(shape[1])
upstream = rng.standard_normal(shape)


def run(fused: bool):
    x, gamma, beta = (Tensor(a, requires_grad=True) for a in (x_data, gamma_data, beta_data))
    start = time.perf_counter()
    if fused:
        y = F.batch_norm(x, gamma, beta, to_device(np.zeros(shape[1])), to_device(np.ones(shape[1])), training=True)
    else:
        y = batch_norm_staged(x, gamma, beta)
    y.backward(upstream)
    synchronize()  # on a GPU, wait for the work before reading the clock
    return time.perf_counter() - start, *(to_host(a) for a in (y.data, x.grad, gamma.grad, beta.grad))


staged, fused = run(False), run(True)
table("staged (autograd over small ops) vs fused (one formula)", ["", "staged", "fused", "max |difference|"], [
    ["forward + backward ms", staged[0] * 1e3, fused[0] * 1e3, ""],
    *[[name, "", "", float(np.abs(a - b).max())] for name, a, b in zip(["y", "dx", "dgamma", "dbeta"],
                                                                       staged[1:], fused[1:])],
])

# %% [markdown]
# Train vs eval. Feed batches whose channels have mean 3 and variance 4. In training mode the
# running statistics move 10% of the way toward each batch's statistics (momentum 0.1, and the
# variance is the unbiased one, as in PyTorch); eval mode then normalizes with them.
# %%
steps = 10 if args.smoke else 60
running_mean, running_var = to_device(np.zeros(1)), to_device(np.ones(1))  # buffers live where the model does
history = []
for _ in range(steps):
    batch = Tensor(rng.normal(3, 2, (32, 1, 4, 4)))
    F.batch_norm(batch, Tensor(np.ones(1)), Tensor(np.zeros(1)), running_mean, running_var, training=True)
    history.append((to_host(running_mean)[0], to_host(running_var)[0]))
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot([h[0] for h in history], label="running mean")
ax.plot([h[1] for h in history], label="running variance")
ax.axhline(3, ls=":", color="C0")
ax.axhline(4, ls=":", color="C1")
ax.set(xlabel="training step", title="running statistics approach the data's (dotted)")
ax.legend()
ax.grid(alpha=0.3)
save(fig, args.out, "running_stats.png")

test = Tensor(rng.normal(3, 2, (1, 1, 4, 4)))
one = Tensor(np.ones(1))
zero = Tensor(np.zeros(1))
train_out = F.batch_norm(test, one, zero, running_mean.copy(), running_var.copy(), training=True).numpy()
eval_out = F.batch_norm(test, one, zero, running_mean, running_var, training=False).numpy()
table("one image of 16 values (mean 3, std 2)", ["mode", "output mean", "output std"], [
    ["train (its own statistics)", float(train_out.mean()), float(train_out.std())],
    ["eval (running statistics)", float(eval_out.mean()), float(eval_out.std())],
])
console.print("In train mode even a single image comes out with mean 0 and std 1: the output depends on the "
              "batch. Eval mode makes each image's output its own.")
