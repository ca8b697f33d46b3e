"""Where a training step's time goes: charts drawn from the `minibn bench --json` files in lessons/site/data/.

Drawn when the site builds (matplotlib's plot directive), so a new measurement is a new JSON file
(lessons/guide/speed.md says how to make one) and nothing else. One row per file: the step split into
convolutions, BatchNorm, other ops, SGD and the autograd engine; then the ops of the first file's step.
"""
import json
from pathlib import Path

import matplotlib.pyplot as plt

# the plot directive runs this with the working directory set to this folder, and without __file__
HERE = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()

DATA = HERE.parent / "data"
records = sorted((json.loads(path.read_text()) for path in DATA.glob("bench-*.json")),
                 key=lambda r: (r["backend"], r["depth"], r["train"] != "bn", r["train"]))  # BN-only first
if not records:
    raise SystemExit(f"no bench-*.json in {DATA}: make one with `minibn bench --json` (lessons/guide/speed.md)")


def label(record: dict) -> str:
    path = ("fast CPU path" if record["fast_cpu"] else "textbook ops") if record["backend"] == "numpy" else \
        ("kernels" if record["kernels"] else "fast_gpu" if record["fast_gpu"] else "textbook ops")
    return f"ResNet-{record['depth']} {record['train']}, {record['backend']} ({path})"


fig, (parts_ax, ops_ax) = plt.subplots(2, 1, figsize=(9, 2.2 + 0.6 * len(records) + 3.2),
                                       gridspec_kw={"height_ratios": [1 + 0.4 * len(records), 4]})
colors = plt.get_cmap("tab10").colors
names = list(dict.fromkeys(name for record in records for name in record["time_by_part_ms"]))
for row, record in enumerate(records):
    left = 0.0
    for i, name in enumerate(names):
        ms = record["time_by_part_ms"].get(name, 0.0)
        parts_ax.barh(row, ms, left=left, color=colors[i % 10], label=name if row == 0 else None)
        left += ms
    parts_ax.text(left, row, f" {record['results'][0]['train_ms']:.0f} ms/step (median)", va="center", fontsize=8)
parts_ax.set_yticks(range(len(records)), [label(r) for r in records], fontsize=8)
parts_ax.invert_yaxis()
parts_ax.set_xlabel("ms per training step, each op synchronized and timed alone")
parts_ax.legend(fontsize=7, ncol=len(names), loc="lower left", bbox_to_anchor=(0, 1.0))
first = records[0]
parts_ax.set_xlim(0, 1.35 * max(sum(r["time_by_part_ms"].values()) for r in records))

ops = sorted(first["profile"], key=lambda op: op["ms"], reverse=True)[:12]
ops_ax.barh(range(len(ops)), [op["ms"] for op in ops], color="tab:blue")
ops_ax.set_yticks(range(len(ops)), [f"{op['op']} {op['phase']} ({op['implementation']})" for op in ops], fontsize=7)
ops_ax.invert_yaxis()
ops_ax.set_xlabel(f"ms per step, the 12 slowest ops of {label(first)}")
blas = f", BLAS {first['blas']}" if first.get("blas") else ""
fig.suptitle(f"{first['device']['device']}, {first.get('threads')} threads{blas}; {first.get('measured_at', '')}",
             fontsize=8)
fig.tight_layout()
