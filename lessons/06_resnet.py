# %%
"""Lesson 06: residual blocks and the CIFAR ResNet: shapes, parameter counts, the BN share.

What you learn: how a ResNet of depth 6n+2 is put together (stem, three stages, head), how the
shapes change at each stage, and how few of its parameters belong to BatchNorm, the only ones the
experiment trains.
Run:   python lessons/06_resnet.py        (seconds)
Look:  the shape table, the parameter table, and out/06_resnet/parameters.png.
"""
# %%
import numpy as np
from common import console, lesson_args, plt, save, table

from minibn import Tensor, no_grad
from minibn import functional as F
from minibn.models import cifar_resnet, count_parameters, set_trainable

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
