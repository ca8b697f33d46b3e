"""What every command shares: the `minibn` group, the console, --backend, --depth and --data.

Errors a user can cause end as one line (a click usage error or "Error: ..."), never a traceback.
"""
from __future__ import annotations

import math
import os
import platform
import tempfile
from pathlib import Path

import click
import numpy as np
from rich.console import Console, ConsoleDimensions

import minibn
from minibn import backend, fast
from minibn.models import valid_depths



class _Console(Console):
    """rich's Console, except that in a log, a pipe or a test (standard output is no terminal) it wraps no line.

    rich wraps at $COLUMNS, or 80, wherever it writes: a log of `minibn train` then splits an epoch's line
    mid-number, and a long path splits words that scripts and tests look for. Tables are as wide as their
    contents need, and never wider than this.
    """

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        isatty = getattr(self.file, "isatty", None)
        return size if self.is_jupyter or (isatty is not None and isatty()) else ConsoleDimensions(10_000, size.height)

    @size.setter
    def size(self, new_size) -> None:
        Console.size.fset(self, new_size)


console = _Console(highlight=False)

backend_option = click.option(  # passed as backend_name: `backend` is the module
    "--backend", "backend_name", type=click.Choice(backend.BACKENDS), default=None,
    show_default="auto (or $MINIBN_BACKEND)",
    help="numpy (CPU), cupy (GPU) or auto: CuPy when a CUDA device works, else NumPy.")


def _set_fast_gpu(ctx, param, value) -> None:
    if value is not None:
        fast.use(fast_gpu=value)


def fast_path_options(command):
    """--fast-cpu/--no-fast-cpu, --fast-gpu/--no-fast-gpu and --kernels/--no-kernels: the same switches on
    every command that computes (minibn/fast/switches.py); the command passes the first and the last to ``fast.use``,
    --fast-gpu sets its switch as it is read."""
    command = click.option("--fast-gpu/--no-fast-gpu", default=None, expose_value=False, callback=_set_fast_gpu,
                           help="CuPy's flat-layout conv and BatchNorm in few calls (minibn/fast/gpu.py); off runs "
                                "the textbook ops [default: on, or $MINIBN_FAST_GPU].")(command)
    command = click.option("--kernels/--no-kernels", "use_kernels", default=None,
                           help="CuPy's hand-written kernels (minibn/fast/kernels.py) for the ops that have one "
                                "[default: off, or $MINIBN_KERNELS].")(command)
    return click.option("--fast-cpu/--no-fast-cpu", "use_fast_cpu", default=None,
                        help="NumPy's fast path: conv, BatchNorm and pooling on the flat layout (minibn/fast); "
                             "off runs the textbook ops [default: on, or $MINIBN_FAST_CPU].")(command)


def select_backend(name: str | None, default: str = "auto") -> None:
    """Apply --backend (falling back to $MINIBN_BACKEND, then ``default``); one-line error on failure."""
    try:
        backend.use_backend(name or os.environ.get("MINIBN_BACKEND") or default)
    except backend.BackendError as error:
        raise click.ClickException(str(error)) from None


class _Commands(click.Group):
    """click's group, but Ctrl-C that no command handles (train, sweep and gradcheck save their work first; others,
    or any while still importing) ends with one line and exit status 130, as a shell command does, not click's
    "Aborted!" and status 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            click.echo("interrupted (Ctrl-C)", err=True)
            ctx.exit(130)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(minibn.__version__, prog_name="minibn")
def main():
    """minibn: train ResNets on CIFAR-10 with NumPy or CuPy, and train only BatchNorm."""
    from minibn.fast import threads
    try:
        threads.num_threads()
    except ValueError as error:  # a bad MINIBN_THREADS: say so before any work starts
        raise click.UsageError(str(error)) from None


def check_depth(ctx, param, value):
    if value is not None and value not in valid_depths(10_000):
        raise click.BadParameter(f"{value} is not 6n+2; valid depths are 8, 14, 20, 26, 32, 44, 56, 110, ...")
    return value


class FiniteFloatRange(click.FloatRange):
    """click.FloatRange that also refuses nan and inf, which pass every range comparison."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


def load_data(data: str, data_dir: str | None, purpose: str = "training"):
    """The data set for --data (see data_folder); ``purpose`` ("training" or "evaluating") is what the
    notice of the bundled sample says it is used for."""
    from minibn.data import DataError, load_cifar10_folder, load_sample
    folder = data_folder(data, data_dir, purpose)
    try:
        return load_sample() if folder is None else load_cifar10_folder(folder)
    except DataError as error:
        raise click.ClickException(str(error)) from None
    except OSError as error:  # e.g. a data folder that cannot be read
        raise click.ClickException(f"cannot read {error.filename or folder}: {error.strerror}") from None


def data_folder(data: str, data_dir: str | None, purpose: str = "training") -> Path | None:
    """Where the data of --data is: None for the bundled sample, else the cifar-10-batches-py folder (absolute).
    cifar10: found or downloaded; auto: CIFAR-10 when --data-dir is given or it is found in $MINIBN_DATA or
    ~/.cache/minibn, else the bundled sample (saying so, and what it is used for: ``purpose``)."""
    from minibn.data import DataError, download_cifar10, find_cifar10, load_sample
    from minibn.data.cifar import search_dirs
    if data_dir is not None and data != "sample" and not Path(data_dir).is_dir():
        if os.path.lexists(data_dir):
            raise click.UsageError(f"--data-dir {data_dir} is not a folder (a file, or a broken or looping link)")
        if data == "auto":  # a misspelled folder is not created, nor 170 MB downloaded into it
            raise click.UsageError(f"--data-dir {data_dir} does not exist; check the path, or pass --data cifar10 "
                                   f"to download CIFAR-10 into it")
    try:
        if data == "sample":
            return None
        folder = find_cifar10(data_dir)
        if folder is None and data == "auto" and data_dir is None:
            sample = load_sample()
            images = f"{len(sample.x_train)} training" if purpose == "training" else f"{len(sample.x_test)} test"
            console.print(f"[yellow]CIFAR-10 not found ($MINIBN_DATA, ~/.cache/minibn): {purpose} on the "
                          f"bundled sample's {images} images. Use --data cifar10 to download the real data "
                          "set.[/yellow]")
            return None
        return (folder or download_cifar10(search_dirs(data_dir)[0], console=console)).resolve()
    except DataError as error:
        raise click.ClickException(str(error)) from None
    except OSError as error:  # e.g. a data folder that cannot be read
        raise click.ClickException(f"cannot read {error.filename or data_dir}: {error.strerror}") from None


def gpu_memory_error(error: BaseException) -> bool:
    return isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError"


def out_of_memory(batch_size: int, smallest: int, resumed: bool = False) -> click.ClickException:
    """The one-line error for running out of memory at ``batch_size``, with advice that can work: half the
    batch while there is a smaller one (``smallest``: 2 to train, as BatchNorm needs 2 images; 1 to evaluate),
    else a smaller model or the CPU. A resumed run keeps its batch size."""
    if resumed and batch_size > smallest:
        return click.ClickException(f"out of memory at batch size {batch_size}, which a resumed run keeps; free "
                                    f"memory (close other programs on this device), or start a new run with "
                                    f"--batch-size {max(batch_size // 2, smallest)}")
    if batch_size > smallest:
        return click.ClickException(f"out of memory at batch size {batch_size}; try --batch-size "
                                    f"{max(batch_size // 2, smallest)}")
    return click.ClickException(f"out of memory even at batch size {batch_size}, the smallest there is; use a "
                                f"smaller model (--depth, --width), free memory on this device, or compute on the "
                                f"CPU (--backend numpy)")


def writable_file(ctx, param, value):
    """A click callback for an output file: say now, before any work, if it cannot be written there."""
    if value is None:
        return value
    folder = Path(value).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".tmp-"):
            pass
    except OSError as error:
        raise click.BadParameter(f"cannot write {value} ({error.strerror}); choose another path") from None
    return value


def require_tensorboard_writer(ctx, param, value):
    """--tensorboard: a one-line error now, before any training, when the writer is not installed."""
    if value:
        from minibn.tensorboard_log import summary_writer
        try:
            summary_writer()
        except ImportError as error:
            raise click.UsageError(str(error)) from None
    return value


tensorboard_option = click.option(
    "--tensorboard", is_flag=True, callback=require_tensorboard_writer,
    help="Also write TensorBoard event files into the run folder, every epoch (minibn[tensorboard]); "
         "watch with: tensorboard --logdir runs/")


def device_description() -> dict:
    """Name and memory of the current device, for `minibn info` and benchmarks."""
    if backend.xp() is np:
        return {"device": _cpu_name(), "cores": os.cpu_count()}
    cupy = backend.xp()
    device = cupy.cuda.Device()
    props = cupy.cuda.runtime.getDeviceProperties(device.id)
    free, total = device.mem_info
    return {"device": props["name"].decode(), "memory_gib": round(total / 2**30, 1),
            "free_gib": round(free / 2**30, 1), "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion()}


def _cpu_name() -> str:
    """The processor's model name (from /proc/cpuinfo on Linux), else the machine type."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
