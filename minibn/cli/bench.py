"""`minibn bench`: speed of the training step and evaluation, optionally against PyTorch."""
from __future__ import annotations

import json
import os
from datetime import datetime, timezone

import click
from rich.table import Table

from minibn import backend, blas_kernel, fast
from minibn.cli.common import (backend_option, check_depth, console, device_description, fast_path_options, main,
                               select_backend, writable_file)
from minibn.files import write_text_atomically
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
@fast_path_options
@click.option("--threads", type=click.IntRange(min=1), help="Threads of the fast CPU path [default: the cores].")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), callback=writable_file,
              help="Also write the results to this file (checked before the benchmark runs).")
def bench(backend_name, depth, mode, batch_size, eval_batch_size, steps, repeats, warmup, compare, math_mode,
          profile, use_kernels, use_fast_cpu, threads, json_path):
    """Time the training step (forward, backward, SGD) and evaluation on synthetic CIFAR-shaped data."""
    from minibn.bench import minibn_case, profile_steps, run, time_by_part, torch_case
    # CuPy fixes its float32 matmul mode at the first matmul, which the backend check makes: set it first.
    os.environ["CUPY_TF32"] = "1" if math_mode == "tf32" else "0"
    select_backend(backend_name)
    on_gpu = backend.backend_name() == "cupy"
    if math_mode == "tf32" and not on_gpu:
        raise click.UsageError("--math tf32 needs a GPU (TF32 is a tensor-core format); on a CPU the math is FP32")
    fast.use(fast_cpu=use_fast_cpu, kernels=use_kernels, threads=threads)
    device = device_description()
    blas, blas_warnings = _print_header(depth, mode, batch_size, steps, repeats, warmup, math_mode, on_gpu, device)
    cases = [lambda: minibn_case(depth, mode, batch_size, eval_batch_size)]
    if compare == "torch":
        import importlib.util
        if importlib.util.find_spec("torch") is None:
            raise click.ClickException("--compare torch needs PyTorch: pip install torch")
        cases.append(lambda: torch_case(depth, mode, batch_size, eval_batch_size, on_gpu, tf32=math_mode == "tf32"))
        console.print("minibn and PyTorch take turns, repeat by repeat")
    results = run(cases, batch_size, eval_batch_size, steps, repeats, warmup)

    console.print(_results_table(results, on_gpu))
    for r in results[1:]:
        console.print(f"{r['name']}: {r['detail']}")
    ratios = {}
    if len(results) == 2:
        ratios = {"train": results[0]["train_ms"] / results[1]["train_ms"],
                  "eval": results[1]["eval_images_per_s"] / results[0]["eval_images_per_s"]}
        console.print(f"minibn / torch time: training step {ratios['train']:.2f}x, evaluation {ratios['eval']:.2f}x")

    profile_rows, step_ms = profile_steps(depth, mode, batch_size)
    parts = time_by_part(profile_rows, step_ms)
    console.print("where a minibn step's time goes (each op synchronized): " + ", ".join(
        f"{name} {ms:.0f} ms ({ms / step_ms:.0%})" for name, ms in parts.items()))
    device_ops = device_operations(depth, mode, batch_size, eval_batch_size) if on_gpu else None
    if profile:
        console.print(_profile_table(profile_rows))
    if json_path:
        record = {"measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "depth": depth,
                  "train": mode, "batch_size": batch_size, "eval_batch_size": eval_batch_size,
                  "steps": steps, "repeats": repeats, "warmup": warmup, "backend": backend.backend_name(),
                  "kernels": on_gpu and fast.switches.kernels,
                  "fast_cpu": not on_gpu and fast.switches.fast_cpu,
                  "fast_gpu": on_gpu and fast.switches.fast_gpu and not fast.switches.kernels,
                  "threads": None if on_gpu else fast.settings()["threads"], "math": math_mode, "device": device,
                  "blas": blas, "blas_warnings": blas_warnings,
                  "results": results, "ratio_to_torch": ratios, "time_by_part_ms": parts, "device_ops": device_ops,
                  "profile": [{"op": op, "implementation": where, "phase": phase, "ms": ms, "calls": calls}
                              for op, where, phase, ms, calls in profile_rows]}
        _write_json(json_path, record)


def _print_header(depth, mode, batch_size, steps, repeats, warmup, math_mode, on_gpu: bool, device: dict):
    """What is measured, on what, with which math and BLAS kernel; returns the kernel and any warnings."""
    math_line = ("TF32 matmuls (and TF32 cuDNN convolutions in PyTorch)" if math_mode == "tf32"
                 else "FP32 everywhere (TF32 off in cuBLAS and cuDNN)" if on_gpu else "FP32")
    console.print(f"ResNet-{depth}, training {mode}, batch {batch_size}, float32, on {backend.backend_name()}"
                  f"{_path_description(on_gpu)}: {device.get('device')}; median of {repeats} repeats of {steps} "
                  f"steps after {warmup} warm-up")
    console.print(f"math: {math_line}, on both sides")
    blas, blas_warnings = blas_kernel.describe() if not on_gpu else (None, [])
    if blas:
        console.print(f"BLAS (threadpoolctl): {blas}")
    for warning in blas_warnings:
        console.print(f"[yellow]warning: {warning}[/yellow]")
    return blas, blas_warnings


def _write_json(json_path, record: dict) -> None:
    try:
        write_text_atomically(json_path, json.dumps(record, indent=2) + "\n")
    except OSError as error:  # e.g. the disk filled during the benchmark
        raise click.ClickException(f"cannot write {json_path} ({error.strerror}); the results are printed "
                                   f"above") from None


def _path_description(on_gpu: bool) -> str:
    """Which implementation the benchmark's minibn runs, for its first line."""
    if on_gpu:
        return (" + kernels" if fast.switches.kernels else " (flat layout, fast_gpu)" if fast.switches.fast_gpu
                else " (textbook ops)")
    count = fast.settings()["threads"]
    return (f" (fast CPU path, {count} thread{'s' if count > 1 else ''})" if fast.switches.fast_cpu
            else " (textbook ops)")


def _results_table(results: list[dict], on_gpu: bool) -> Table:
    table = Table(title="training step and evaluation")
    peak = "peak MiB" if on_gpu else "peak RSS MiB"
    memory_columns = (peak, "kept MiB") if on_gpu else (peak,)  # kept: scratch held from step to step
    for column in ("", "ms/step", "min-max", "train img/s", "eval img/s", "s/epoch", *memory_columns):
        table.add_column(column, justify="left" if not column else "right")
    for r in results:
        low, high = r["train_spread_ms"]
        memory = ["" if r[key] is None else f"{r[key]:.0f}"
                  for key in ("peak_memory_mib", "kept_memory_mib")[:len(memory_columns)]]
        table.add_row(r["name"], f"{r['train_ms']:.1f}", f"{low:.0f}-{high:.0f}", f"{r['train_images_per_s']:.0f}",
                      f"{r['eval_images_per_s']:.0f}", f"{r['epoch_seconds']:.1f}", *memory)
    return table


def _profile_table(profile_rows: list) -> Table:
    total = sum(row[3] for row in profile_rows)
    table = Table(title="where a training step's time goes (each op synchronized)")
    for column in ("op", "implementation", "phase", "ms/step", "share", "calls/step"):
        table.add_column(column, justify="right" if column not in ("op", "implementation", "phase") else "left")
    for op, where, phase, ms, calls in profile_rows:
        table.add_row(op, where, phase, f"{ms:.2f}", f"{ms / total:.0%}", str(calls))
    return table


def device_operations(depth: int, mode: str, batch_size: int, eval_batch_size: int) -> dict | None:
    """Print and return the device operations of one training step and one evaluation forward, where they
    can be counted (CuPy's strict stand-in); a real CuPy has no counter, and the line says so."""
    from minibn.opcount import counting_available, step_counts
    if fast.switches.kernels or not counting_available():
        why = "the hand-written kernels cannot run in the stand-in" if counting_available() else \
            "a real CuPy has no counter; the test suite's CuPy stand-in counts them"
        console.print(f"device operations per step: not counted ({why})")
        return None
    counts = step_counts(depth, mode, batch_size, eval_batch_size)
    console.print(f"device operations (counted by the CuPy stand-in): training step {counts['train'].total}, "
                  f"evaluation forward {counts['eval'].total}; most in a step: " + ", ".join(
                      f"{op} {n}" for op, n in list(counts["train"].by_op.items())[:4]))
    return {phase: {"total": count.total, "by_op": count.by_op} for phase, count in counts.items()}
