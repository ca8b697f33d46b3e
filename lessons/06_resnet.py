# %%
"""Lesson 06: residual blocks and the CIFAR ResNet: shapes, parameter counts, the BN share; editing a block
========================================================================================================

What you learn: how a ResNet of depth 6n+2 is put together (stem, three stages, head), how the
shapes change at each stage, and how few of its parameters belong to BatchNorm, the only ones the
experiment trains. Then: the model's code is the code that runs. Edit a block (here, to
pre-activation) and the edit is what trains, on every backend, with the fast paths on or off.

Run::

    python lessons/06_resnet.py        (seconds)

Look: the shape table, the parameter table, out/06_resnet/parameters.png, and the last three
tables: the edited model's training, the same numbers with and without the fast path, and
which implementation each op ran.
"""
# %%
import numpy as np
from common import console, lesson_args, plt, save, table

from minibn import Tensor, fast, nn, no_grad, optim
from minibn import functional as F
from minibn.models import BasicBlock, cifar_resnet, count_parameters, set_trainable

args = lesson_args("06_resnet", __doc__)

# %% [markdown]
# Follow a batch of 2 images through ResNet-20.
# %%
model = cifar_resnet(20).eval()
x = Tensor(np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32))
rows = [["input", x.shape]]
with no_grad():
    out = F.relu(model.bn1(model.conv1(x)))
    rows.append(["stem: conv3x3 -> BN -> ReLU", out.shape])
    for name in ("layer1", "layer2", "layer3"):
        layer = getattr(model, name)
        out = layer(out)
        rows.append([f"{name}: {len(layer)} blocks", out.shape])
    pooled = F.global_avg_pool2d(out)
    rows.append(["global average pool", pooled.shape])
    rows.append(["fc: linear 64 -> 10", model.fc(pooled).shape])
table("ResNet-20, shapes (N, C, H, W)", ["stage", "shape"], rows)
console.print("The first block of stages 2 and 3 halves the map with stride 2 and doubles the channels; "
              "its shortcut is a 1x1 conv (stride 2) + BN so that the shapes match.")

# %% [markdown]
# Parameter counts by depth (the recipe's table), and the share that BN-only training trains.
# %%
depths = [8, 14, 20] if args.smoke else [14, 20, 32, 56, 110]
rows, counts = [], {}
for depth in depths:
    c = count_parameters(cifar_resnet(depth))
    counts[depth] = c
    rows.append([f"ResNet-{depth}", f"{c['conv']:,}", f"{c['bn']:,}", f"{c['linear']:,}", f"{c['total']:,}",
                 f"{c['bn'] / c['total']:.2%}"])
table("parameters", ["depth", "conv", "BN (gamma, beta)", "linear", "total", "BN share"], rows)
trainable = {mode: set_trainable(cifar_resnet(20), mode) for mode in ("all", "bn", "bn+output", "output", "random")}
table("ResNet-20: trainable scalars in each mode", ["mode", "trainable"], [[m, f"{n:,}"] for m, n in trainable.items()])

fig, ax = plt.subplots(figsize=(6, 3.8))
for kind in ("conv", "bn", "linear"):
    ax.plot(depths, [counts[d][kind] for d in depths], marker="o", label=kind)
ax.set(xscale="log", yscale="log", xlabel="depth", ylabel="parameters", title="where the parameters are")
ax.set_xticks(depths, [str(d) for d in depths])
ax.minorticks_off()
ax.legend()
ax.grid(alpha=0.3)
save(fig, args.out, "parameters.png")

# %% [markdown]
# Edit a block: pre-activation
# ----------------------------
#
# `BasicBlock.forward` in `minibn/models.py` is the only definition of what a block computes:
# conv -> BN -> ReLU -> conv -> BN, add the shortcut, ReLU. Each op in it runs its textbook version
# or a fast one that the speed package `minibn/fast` registered (`minibn/registry.py`): on NumPy, by
# default, the convolutions and BatchNorms run on the fast CPU path's flat layout, and `bn.forward_relu(x, residual)`, which is
# `relu(bn(x) + residual)`, runs as one fused op there and as three textbook ops elsewhere.
#
# He et al.'s follow-up paper (Identity Mappings in Deep Residual Networks, 2016) moves BN and ReLU
# before each conv, "pre-activation", so that the shortcut adds the block's input untouched. Here it
# is, as a subclass that changes `forward` (and normalizes the block's input, so `bn1` has the input's
# channels); `cifar_resnet(..., block=PreActBlock)` builds the ResNet from it.
# %%
class PreActBlock(BasicBlock):
    """BN -> ReLU -> conv3x3 -> BN -> ReLU -> conv3x3, plus the shortcut (a 1x1 conv where the shape changes)."""

    def __init__(self, in_channels, out_channels, stride, rng):
        super().__init__(in_channels, out_channels, stride, rng)
        self.bn1 = nn.BatchNorm2d(in_channels, rng=rng)
        if self.shortcut is not None:
            self.shortcut = self.shortcut[0]  # the projection's conv, without its BN

    def forward(self, x):
        out = F.relu(self.bn1(x))
        shortcut = x if self.shortcut is None else self.shortcut(out)
        out = self.conv1(out)
        return self.conv2(F.relu(self.bn2(out))) + shortcut


depth, size, batch, steps = (8, 8, 4, 3) if args.smoke else (20, 16, 16, 5)
data_rng = np.random.default_rng(1)
images = data_rng.standard_normal((steps, batch, 3, size, size))
labels = data_rng.integers(0, 10, (steps, batch))


def train(block, fast_cpu=None, dtype=np.float32, depth=depth):
    """A few SGD steps of ResNet-`depth` built from `block`; returns the losses and the final state."""
    with fast.use(fast_cpu=fast_cpu):  # None: as the environment and --fast-cpu set it; put back after
        model = cifar_resnet(depth, seed=0, block=block).to(dtype)
        optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        losses = []
        for x, y in zip(images, labels):
            optimizer.zero_grad()
            loss = F.cross_entropy(model(Tensor(x.astype(dtype))), y)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    return losses, model.state_dict()


default_path = "the fast CPU path" if fast.switches.fast_cpu else "the textbook ops"
original, _ = train(BasicBlock)
edited, _ = train(PreActBlock)
table(f"ResNet-{depth}, {steps} SGD steps on the same batches, default path ({default_path} on NumPy)",
      ["step", "loss, BasicBlock", "loss, PreActBlock"],
      [[i + 1, a, b] for i, (a, b) in enumerate(zip(original, edited))])
console.print("Different losses: the edited block is what trains.")

# %% [markdown]
# A pre-activation ResNet-8 in float64 with the fast CPU path on and off: the same numbers, to
# rounding, for the losses and every parameter and running statistic after training.
# %%
fast_losses, fast_state = train(PreActBlock, fast_cpu=True, dtype=np.float64, depth=8)
textbook_losses, textbook_state = train(PreActBlock, fast_cpu=False, dtype=np.float64, depth=8)
worst = max(float(np.abs(fast_state[name] - textbook_state[name]).max()) for name in fast_state)
table("PreActBlock ResNet-8, float64: fast CPU path on vs off", ["compared", "max |difference|"],
      [["losses", float(np.abs(np.subtract(fast_losses, textbook_losses)).max())],
       ["parameters and running statistics", worst]])

# %% [markdown]
# Which implementation each op of one training step ran (`minibn info` shows the same for the
# recipe's ResNet). On NumPy with the fast path on, the images enter the flat layout once (ToFlat);
# the convolutions, the BatchNorms, and the ReLUs and adds between them (elementwise: they run on the
# flat layout as it is) never leave it, until the global average pool.
# %%
model = cifar_resnet(8, width=4, seed=0, block=PreActBlock)
small = Tensor(np.random.default_rng(2).standard_normal((2, 3, 8, 8)).astype(np.float32), requires_grad=True)
rows = fast.ops_run(lambda: F.cross_entropy(model(small), np.array([1, 2])).backward())
table(f"ops of a PreActBlock ResNet's training step ({default_path})", ["op", "implementation", "runs"], rows)
