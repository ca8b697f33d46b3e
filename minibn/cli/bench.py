"""`minibn bench`: speed of the training step and evaluation, optionally against PyTorch."""
from __future__ import annotations

import json
import os
from pathlib import Path

import click
from rich.table import Table

from minibn import backend, kernels
from minibn.cli.common import backend_option, check_depth, console, main, select_backend
from minibn.models import MODES


@main.command()
@backend_option
@click.option("--depth", default=20, show_default=True, callback=check_depth)
@click.option("--train", "mode", default="bn", show_default=True, type=click.Choice(MODES))
@click.option("--batch-size", default=128, show_default=True, type=click.IntRange(min=2))
@click.option("--eval-batch-size", default=1000, show_default=True, type=click.IntRange(min=1))
@click.option("--steps", default=10, show_default=True, type=click.IntRange(min=1), help="Steps per repeat.")
@click.option("--repeats", default=5, show_default=True, type=click.IntRange(min=1))
@click.option("--warmup", default=3, show_default=True, type=click.IntRange(min=0))
@click.option("--compare", type=click.Choice(["torch"]), help="Also time PyTorch eager in this process.")
@click.option("--math", "math_mode", default="fp32", show_default=True, type=click.Choice(["fp32", "tf32"]),
              help="Float32 matrix math on a GPU, the same on both sides: fp32, or tf32 (tensor cores, "
                   "10-bit mantissa) in cuBLAS, and in cuDNN for PyTorch.")
@click.option("--profile", is_flag=True, help="Show where a step's time goes, op by op (synchronizes each op).")
@click.option("--kernels/--no-kernels", "use_kernels", default=None,
              help="CuPy fast paths on or off [default: $MINIBN_KERNELS, else off].")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the results to this file.")
def bench(backend_name, depth, mode, batch_size, eval_batch_size, steps, repeats, warmup, compare, math_mode,
          profile, use_kernels, json_path):
    """Time the training step (forward, backward, SGD) and evaluation on synthetic CIFAR-shaped data."""
    from minibn.bench import bench_minibn, bench_torch, profile_steps
    # CuPy fixes its float32 matmul mode at the first matmul, which the backend check makes: set it first.
    os.environ["CUPY_TF32"] = "1" if math_mode == "tf32" else "0"
    select_backend(backend_name)
    on_gpu = backend.backend_name() == "cupy"
    if math_mode == "tf32" and not on_gpu:
        raise click.UsageError("--math tf32 needs a GPU (TF32 is a tensor-core format); on a CPU the math is FP32")
    if use_kernels is not None:
        kernels.use_kernels(use_kernels)
    device = backend.device_description()
    fast = " + kernels" if on_gpu and kernels.kernels_enabled() else ""
    math_line = ("TF32 matmuls (and TF32 cuDNN convolutions in PyTorch)" if math_mode == "tf32"
                 else "FP32 everywhere (TF32 off in cuBLAS and cuDNN)" if on_gpu else "FP32")
    console.print(f"ResNet-{depth}, training {mode}, batch {batch_size}, float32, on {backend.backend_name()}{fast}: "
                  f"{device.get('device')}; median of {repeats} repeats of {steps} steps after {warmup} warm-up")
    console.print(f"math: {math_line}, on both sides")
    results = [bench_minibn(depth, mode, batch_size, eval_batch_size, steps, repeats, warmup)]
    if compare == "torch":
        try:
            import torch  # noqa: F401
        except ImportError:
            raise click.ClickException("--compare torch needs PyTorch: pip install torch") from None
        results.append(bench_torch(depth, mode, batch_size, eval_batch_size, steps, repeats, warmup, on_gpu,
                                   tf32=math_mode == "tf32"))

    table = Table(title="training step and evaluation")
    for column in ("", "ms/step", "min-max", "train img/s", "eval img/s", "s/epoch", "peak MiB"):
        table.add_column(column, justify="left" if not column else "right")
    for r in results:
        low, high = r["train_spread_ms"]
        peak = "" if r["peak_memory_mib"] is None else f"{r['peak_memory_mib']:.0f}"
        table.add_row(r["name"], f"{r['train_ms']:.1f}", f"{low:.0f}-{high:.0f}", f"{r['train_images_per_s']:.0f}",
                      f"{r['eval_images_per_s']:.0f}", f"{r['epoch_seconds']:.1f}", peak)
    console.print(table)
    for r in results[1:]:
        console.print(f"{r['name']}: {r['detail']}")
    ratios = {}
    if len(results) == 2:
        ratios = {"train": results[0]["train_ms"] / results[1]["train_ms"],
                  "eval": results[1]["eval_images_per_s"] / results[0]["eval_images_per_s"]}
        console.print(f"minibn / torch time: training step {ratios['train']:.2f}x, evaluation {ratios['eval']:.2f}x")

    profile_rows = []
    if profile:
        profile_rows = profile_steps(depth, mode, batch_size)
        total = sum(row[2] for row in profile_rows)
        table = Table(title="where a training step's time goes (each op synchronized)")
        for column in ("op", "phase", "ms/step", "share", "calls/step"):
            table.add_column(column, justify="right" if column not in ("op", "phase") else "left")
        for op, phase, ms, calls in profile_rows:
            table.add_row(op, phase, f"{ms:.2f}", f"{ms / total:.0%}", str(calls))
        console.print(table)
    if json_path:
        record = {"depth": depth, "train": mode, "batch_size": batch_size, "eval_batch_size": eval_batch_size,
                  "steps": steps, "repeats": repeats, "warmup": warmup, "backend": backend.backend_name(),
                  "kernels": bool(fast), "math": math_mode, "device": device, "results": results,
                  "ratio_to_torch": ratios,
                  "profile": [{"op": op, "phase": phase, "ms": ms, "calls": calls}
                              for op, phase, ms, calls in profile_rows]}
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(record, indent=2) + "\n")
