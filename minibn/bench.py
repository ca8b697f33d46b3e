"""`minibn bench`: time the training step and evaluation of a CIFAR ResNet on synthetic data.

Every timing synchronizes the device before reading the clock, follows warm-up
steps, and is the median of several repeats (with the spread shown).
"""
from __future__ import annotations

import resource
import statistics
import time

import numpy as np

from minibn import backend
from minibn import functional as F
from minibn.models import cifar_resnet, set_trainable
from minibn.optim import SGD
from minibn.tensor import Tensor, no_grad, profiler

CIFAR_TRAIN, CIFAR_TEST = 50_000, 10_000


def timed(step, steps: int, repeats: int, warmup: int, sync) -> list[float]:
    """Seconds per call of ``step``: one figure per repeat, each averaged over ``steps`` calls."""
    for _ in range(warmup):
        step()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        sync()
        times.append((time.perf_counter() - start) / steps)
    return times


def summarize(name: str, train_times: list[float], eval_times: list[float], batch_size: int,
              eval_batch_size: int, peak_bytes: int | None) -> dict:
    train_ms, eval_ms = statistics.median(train_times) * 1000, statistics.median(eval_times) * 1000
    train_ips, eval_ips = batch_size / train_ms * 1000, eval_batch_size / eval_ms * 1000
    return {"name": name, "train_ms": train_ms, "train_spread_ms": (min(train_times) * 1000, max(train_times) * 1000),
            "train_images_per_s": train_ips, "eval_ms": eval_ms, "eval_images_per_s": eval_ips,
            "epoch_seconds": CIFAR_TRAIN / train_ips + CIFAR_TEST / eval_ips, "peak_memory_mib":
            None if peak_bytes is None else peak_bytes / 2**20}


def minibn_training_step(depth: int, mode: str, batch_size: int):
    """A ResNet in ``mode``, its optimizer and one fixed synthetic batch; returns (model, step)."""
    rng = np.random.default_rng(0)
    model = cifar_resnet(depth, seed=0)
    set_trainable(model, mode)
    optimizer = SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    images = Tensor(rng.standard_normal((batch_size, 3, 32, 32)).astype(np.float32))
    labels = backend.to_device(rng.integers(0, 10, batch_size))

    def train_step():
        optimizer.zero_grad()
        F.cross_entropy(model(images), labels).backward()
        with profiler.timing("SGD", "step"):
            optimizer.step()
    return model, train_step


def bench_minibn(depth: int, mode: str, batch_size: int, eval_batch_size: int, steps: int, repeats: int,
                 warmup: int) -> dict:
    xp = backend.xp()
    model, train_step = minibn_training_step(depth, mode, batch_size)
    eval_images = Tensor(np.random.default_rng(1).standard_normal((eval_batch_size, 3, 32, 32)).astype(np.float32))

    def eval_step():
        with no_grad():
            model(eval_images)

    train_times = timed(train_step, steps, repeats, warmup, backend.synchronize)
    model.eval()
    eval_times = timed(eval_step, max(1, steps // 4), repeats, 1, backend.synchronize)
    model.train()
    if xp.__name__ == "cupy":
        peak = xp.get_default_memory_pool().total_bytes()  # the pool keeps what the step needed at most
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # whole-process peak RSS
    return summarize("minibn", train_times, eval_times, batch_size, eval_batch_size, peak)


def bench_torch(depth: int, mode: str, batch_size: int, eval_batch_size: int, steps: int, repeats: int,
                warmup: int, on_gpu: bool, tf32: bool = False) -> dict:
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
    model = torch_cifar_resnet(depth).to(device)
    set_torch_trainable(model, mode)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9,
                                weight_decay=1e-4)
    images = torch.randn(batch_size, 3, 32, 32, device=device)
    labels = torch.randint(0, 10, (batch_size,), device=device)
    eval_images = torch.randn(eval_batch_size, 3, 32, 32, device=device)
    sync = torch.cuda.synchronize if on_gpu else (lambda: None)

    def train_step():
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()

    def eval_step():
        with torch.no_grad():
            model(eval_images)

    if on_gpu:
        torch.cuda.reset_peak_memory_stats()
    train_times = timed(train_step, steps, repeats, warmup, sync)
    model.eval()
    eval_times = timed(eval_step, max(1, steps // 4), repeats, 1, sync)
    peak = torch.cuda.max_memory_allocated() if on_gpu else None
    threads = "" if on_gpu else f", {torch.get_num_threads()} threads"
    result = summarize("torch", train_times, eval_times, batch_size, eval_batch_size, peak)
    result["detail"] = f"PyTorch {torch.__version__.split('+')[0]} eager on {device}{threads}"
    return result


def profile_steps(depth: int, mode: str, batch_size: int, steps: int = 3) -> list[tuple[str, str, float, int]]:
    """Per-op time of ``steps`` training steps: (op, forward/backward, ms per step, calls per step)."""
    _, train_step = minibn_training_step(depth, mode, batch_size)
    train_step()  # warm-up, not counted
    profiler.reset()
    profiler.enabled, was_enabled = True, profiler.enabled
    try:
        for _ in range(steps):
            train_step()
    finally:
        profiler.enabled = was_enabled
    rows = [(op, phase, total / steps * 1000, calls // steps)
            for (op, phase), (total, calls) in profiler.totals.items()]
    return sorted(rows, key=lambda row: -row[2])
