"""`minibn bench`: time the training step and evaluation of a CIFAR ResNet on synthetic data.

Every timing synchronizes the device before reading the clock, follows warm-up steps, and is the
median of several repeats (with the spread shown). With PyTorch alongside, the two are
interleaved: repeat r of minibn, then repeat r of PyTorch, and so on, so that a machine that
slows down for a while slows both, and their ratio stays meaningful.
"""
from __future__ import annotations

import resource
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from minibn import backend, fast
from minibn import functional as F
from minibn.models import cifar_resnet, set_trainable
from minibn.tensor import Tensor, no_grad, profiler
from minibn.train import training_optimizer

CIFAR_TRAIN, CIFAR_TEST = 50_000, 10_000


@dataclass
class Case:
    """One framework's model, ready to time: a training step, an evaluation step, and how to wait."""
    name: str
    train_step: Callable[[], None]
    eval_step: Callable[[], None]
    sync: Callable[[], None]
    peak_bytes: Callable[[], int | None]
    detail: str = ""
    kept_bytes: Callable[[], int | None] = lambda: None  # device memory kept from step to step (minibn on CuPy)


def time_interleaved(cases: list[Case], step: str, steps: int, repeats: int, warmup: int) -> list[list[float]]:
    """Seconds per call of each case's ``step`` ("train_step" or "eval_step"): one figure per repeat,
    each averaged over ``steps`` calls, the cases taking turns repeat by repeat."""
    for case in cases:
        for _ in range(warmup):
            getattr(case, step)()
        case.sync()
    times = [[] for _ in cases]
    for _ in range(repeats):
        for case, case_times in zip(cases, times):
            start = time.perf_counter()
            for _ in range(steps):
                getattr(case, step)()
            case.sync()
            case_times.append((time.perf_counter() - start) / steps)
    return times


def summarize(case: Case, train_times: list[float], eval_times: list[float], batch_size: int,
              eval_batch_size: int, peak_bytes: int | None, kept_bytes: int | None = None) -> dict:
    train_ms, eval_ms = statistics.median(train_times) * 1000, statistics.median(eval_times) * 1000
    train_ips, eval_ips = batch_size / train_ms * 1000, eval_batch_size / eval_ms * 1000
    return {"name": case.name, "detail": case.detail, "train_ms": train_ms,
            "train_spread_ms": (min(train_times) * 1000, max(train_times) * 1000),
            "train_images_per_s": train_ips, "eval_ms": eval_ms, "eval_images_per_s": eval_ips,
            "epoch_seconds": CIFAR_TRAIN / train_ips + CIFAR_TEST / eval_ips,
            "peak_memory_mib": None if peak_bytes is None else peak_bytes / 2**20,
            "kept_memory_mib": None if kept_bytes is None else kept_bytes / 2**20}


def run(make_cases: list[Callable[[], Case]], batch_size: int, eval_batch_size: int, steps: int, repeats: int,
        warmup: int) -> list[dict]:
    """Make each case and read its peak memory after one training step, before the next case exists
    (on a CPU only the process's peak can be read: minibn's comes before PyTorch is even loaded);
    then time training, then evaluation. One summary per case."""
    cases, peaks, kept = [], [], []
    for make in make_cases:
        cases.append(make())
        cases[-1].train_step()
        cases[-1].sync()
        peaks.append(cases[-1].peak_bytes())
        kept.append(cases[-1].kept_bytes())
    train = time_interleaved(cases, "train_step", steps, repeats, warmup)
    evaluation = time_interleaved(cases, "eval_step", max(1, steps // 4), repeats, 1)
    return [summarize(case, t, e, batch_size, eval_batch_size, peak, kept_bytes)
            for case, t, e, peak, kept_bytes in zip(cases, train, evaluation, peaks, kept)]


def minibn_training_step(depth: int, mode: str, batch_size: int, width: int = 16, image_size: int = 32):
    """A ResNet in ``mode``, its optimizer and one fixed synthetic batch; returns (model, step)."""
    rng = np.random.default_rng(0)
    model = cifar_resnet(depth, width=width, seed=0)
    set_trainable(model, mode)
    optimizer = training_optimizer(model, lr=0.01, momentum=0.9, weight_decay=1e-4)
    images = Tensor(rng.standard_normal((batch_size, 3, image_size, image_size)).astype(np.float32))
    labels = backend.to_device(rng.integers(0, 10, batch_size))

    def train_step():
        optimizer.zero_grad()
        F.cross_entropy(model(images), labels).backward()
        with profiler.timing("sgd_update", "step", module=type(optimizer).__module__):
            optimizer.step()
    return model, train_step


def minibn_case(depth: int, mode: str, batch_size: int, eval_batch_size: int) -> Case:
    xp = backend.xp()
    model, train_step = minibn_training_step(depth, mode, batch_size)
    eval_images = Tensor(np.random.default_rng(1).standard_normal((eval_batch_size, 3, 32, 32)).astype(np.float32))

    def eval_step():
        model.eval()
        with no_grad():
            model(eval_images)
        model.train()

    def peak_bytes():
        if xp.__name__ == "cupy":
            return xp.get_default_memory_pool().total_bytes()  # the pool keeps what the step needed at most
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # the process's peak so far

    def kept_bytes():  # fast/gpu.py's scratch matrices and masks, kept from step to step (lessons/guide/speed.md)
        return fast.kept_bytes() if xp.__name__ == "cupy" else None
    return Case("minibn", train_step, eval_step, backend.synchronize, peak_bytes, kept_bytes=kept_bytes)


def torch_case(depth: int, mode: str, batch_size: int, eval_batch_size: int, on_gpu: bool, tf32: bool = False) -> Case:
    """The same architecture, mode and batch in PyTorch eager (CUDA if minibn runs on the GPU).

    ``tf32`` sets PyTorch's TF32 switches for matmuls and cuDNN convolutions both ways, so that
    its math matches minibn's (PyTorch's own default mixes them: TF32 convolutions, FP32 matmuls).
    """
    import torch
    from minibn.torch_reference import set_torch_trainable, torch_cifar_resnet
    device = "cuda" if on_gpu else "cpu"
    if on_gpu:
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        torch.cuda.reset_peak_memory_stats()
    model = torch_cifar_resnet(depth).to(device)
    set_torch_trainable(model, mode)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9,
                                weight_decay=1e-4)
    images = torch.randn(batch_size, 3, 32, 32, device=device)
    labels = torch.randint(0, 10, (batch_size,), device=device)
    eval_images = torch.randn(eval_batch_size, 3, 32, 32, device=device)

    def train_step():
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()

    def eval_step():
        model.eval()
        with torch.no_grad():
            model(eval_images)
        model.train()

    threads = "" if on_gpu else f", {torch.get_num_threads()} threads"
    return Case("torch", train_step, eval_step, torch.cuda.synchronize if on_gpu else (lambda: None),
                lambda: torch.cuda.max_memory_allocated() if on_gpu else None,
                detail=f"PyTorch {torch.__version__.split('+')[0]} eager on {device}{threads}")


def profile_steps(depth: int, mode: str, batch_size: int, steps: int = 3) -> tuple[list[tuple], float]:
    """Per-op time of ``steps`` training steps: rows of (op, implementation, forward/backward, ms per step,
    calls per step), slowest first, and the wall-clock ms of a profiled step (ops are synchronized one by
    one). The implementation is the file that defines the op that ran (fast.implementation)."""
    _, train_step = minibn_training_step(depth, mode, batch_size)
    train_step()  # warm-up, not counted
    profiler.reset()
    profiler.enabled, was_enabled = True, profiler.enabled
    try:
        backend.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            train_step()
        backend.synchronize()
        step_ms = (time.perf_counter() - start) / steps * 1000
    finally:
        profiler.enabled = was_enabled
    rows = [(op, fast.implementation(profiler.modules[op]), phase, total / steps * 1000, calls // steps)
            for (op, phase), (total, calls) in profiler.totals.items()]
    return sorted(rows, key=lambda row: -row[3]), step_ms


PARTS = (("convolutions", ("Conv",)), ("BatchNorm", ("BatchNorm",)), ("SGD", ("sgd_update",)))


def time_by_part(rows: list[tuple], step_ms: float) -> dict[str, float]:
    """ms per step in convolutions, BatchNorm (with its fused ReLU and add on the fast CPU path),
    the other ops, SGD, and what no op accounts for: the autograd engine and Python."""
    parts = {name: 0.0 for name, _ in PARTS} | {"other ops": 0.0}
    for op, _, _, ms, _ in rows:
        part = next((name for name, prefixes in PARTS if op.startswith(prefixes)), "other ops")
        parts[part] += ms
    parts["autograd and Python"] = max(step_ms - sum(parts.values()), 0.0)
    return parts
