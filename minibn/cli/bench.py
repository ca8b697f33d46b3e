"""`minibn bench`: speed of the training step and evaluation, optionally against PyTorch."""
from __future__ import annotations

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
@click.option("--compare", type=click.Choice(["torch"]), help="Also time PyTorch eager on the same machine.")
@click.option("--profile", is_flag=True, help="Show where a step's time goes, op by op (synchronizes each op).")
@click.option("--kernels/--no-kernels", "use_kernels", default=None,
              help="CuPy fast paths on or off [default: $MINIBN_KERNELS, else off].")
def bench(backend_name, depth, mode, batch_size, eval_batch_size, steps, repeats, warmup, compare, profile,
          use_kernels):
    """Time the training step (forward, backward, SGD) and evaluation on synthetic CIFAR-shaped data."""
    from minibn.bench import bench_minibn, bench_torch, profile_steps
    select_backend(backend_name)
    if use_kernels is not None:
        kernels.use_kernels(use_kernels)
    on_gpu = backend.backend_name() == "cupy"
    device = backend.device_description()
    fast = " + kernels" if on_gpu and kernels.kernels_enabled() else ""
    console.print(f"ResNet-{depth}, training {mode}, batch {batch_size}, float32, on {backend.backend_name()}{fast}: "
                  f"{device.get('device')}; median of {repeats} repeats of {steps} steps after {warmup} warm-up")
    results = [bench_minibn(depth, mode, batch_size, eval_batch_size, steps, repeats, warmup)]
    if compare == "torch":
        try:
            import torch  # noqa: F401
        except ImportError:
            raise click.ClickException("--compare torch needs PyTorch: pip install torch") from None
        results.append(bench_torch(depth, mode, batch_size, eval_batch_size, steps, repeats, warmup, on_gpu))

    table = Table(title="training step and evaluation")
    for column in ("", "ms/step", "spread", "train img/s", "eval img/s", "s/epoch", "peak MiB"):
        table.add_column(column, justify="left" if not column else "right")
    for r in results:
        low, high = r["train_spread_ms"]
        peak = "" if r["peak_memory_mib"] is None else f"{r['peak_memory_mib']:.0f}"
        table.add_row(r["name"], f"{r['train_ms']:.1f}", f"{low:.1f}-{high:.1f}", f"{r['train_images_per_s']:.0f}",
                      f"{r['eval_images_per_s']:.0f}", f"{r['epoch_seconds']:.1f}", peak)
    console.print(table)
    if len(results) == 2:
        console.print(f"minibn / torch step time: {results[0]['train_ms'] / results[1]['train_ms']:.2f}x")

    if profile:
        rows = profile_steps(depth, mode, batch_size)
        total = sum(row[2] for row in rows)
        table = Table(title="where a training step's time goes (each op synchronized)")
        for column in ("op", "phase", "ms/step", "share", "calls/step"):
            table.add_column(column, justify="right" if column not in ("op", "phase") else "left")
        for op, phase, ms, calls in rows:
            table.add_row(op, phase, f"{ms:.2f}", f"{ms / total:.0%}", str(calls))
        console.print(table)
