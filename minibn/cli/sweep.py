"""`minibn sweep`: the depth x mode x seed grid, run here (one at a time or N processes) or on Slurm.

Either way a finished run is skipped, an unfinished one resumes from its checkpoint, and the
grid's finished runs are collected into results.csv, results.md and accuracy_vs_depth.png
(minibn.launch; any other run folder under --out is named and left out). The sweep exits 1 when a
run failed or stopped: running it again resumes them.
"""
from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

import click

from minibn import backend
from minibn.cli.common import backend_option, check_depth, console, data_folder, main, select_backend, tensorboard_option
from minibn.cli.sweep_results import report_results, show_status
from minibn.launch.runs import finished, plan
from minibn.models import MODES

WAIT_SECONDS = 2.0  # --wait: how often to ask the queue
SLURM_ONLY = ("partition", "time_minutes", "gpus_per_task", "cpus_per_task", "mem", "max_running", "sbatch", "wait")
LOCAL_ONLY = ("jobs", "devices")


def int_list(ctx, param, value):
    if value is None:
        return None
    try:
        numbers = [int(v) for v in value.split(",")]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of integers") from None
    if min(numbers) < 0:
        raise click.BadParameter(f"{value!r} holds a negative number")
    return numbers


def mode_list(ctx, param, value):
    modes = value.split(",")
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise click.BadParameter(f"unknown mode(s) {', '.join(unknown)}; choose from {', '.join(MODES)}")
    return modes


def slurm_time(ctx, param, value):
    from minibn.launch.slurm import parse_time
    try:
        return None if value is None else parse_time(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


def sbatch_pairs(ctx, param, value):
    from minibn.launch.slurm import parse_sbatch
    try:
        return parse_sbatch(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


@main.command()
@backend_option
@click.option("--depths", default="14,20", show_default=True, callback=int_list)
@click.option("--modes", default="bn,all,output,random", show_default=True, callback=mode_list)
@click.option("--seeds", default="0", show_default=True, callback=int_list)
@click.option("--epochs", default=30, show_default=True, type=click.IntRange(min=1))
@click.option("--batch-size", default=128, show_default=True, type=click.IntRange(min=2))
@click.option("--width", default=16, show_default=True, type=click.IntRange(min=1), help="Channels of stage 1.")
@click.option("--data", default="auto", show_default=True, type=click.Choice(["auto", "cifar10", "sample"]))
@click.option("--data-dir", type=click.Path(file_okay=False))
@click.option("--subset", type=click.IntRange(min=2), help="Train on the first N training images only.")
@click.option("--test-subset", type=click.IntRange(min=1), help="Evaluate on the first N test images only.")
@click.option("--out", default="runs/sweep", show_default=True, type=click.Path(file_okay=False))
@tensorboard_option
@click.option("--status", is_flag=True, help="Print the state of every run of the grid; train and submit nothing.")
@click.option("--launcher", default="local", show_default=True, type=click.Choice(["local", "slurm"]),
              help="local: on this machine; slurm: one Slurm job array (minibn[slurm]).")
@click.option("--jobs", type=click.IntRange(min=1),
              help="[local] Runs at once, each in its own process [default: 1, in this process; with --devices, "
                   "one per device].")
@click.option("--devices", callback=int_list, help="[local] GPUs to use, one run per GPU at a time, e.g. 0,1,2,3.")
@click.option("--threads", type=click.IntRange(min=1),
              help="CPU threads per run [default: local: the cores / --jobs; slurm: --cpus-per-task]. On NumPy a "
                   "run's numbers depend on it.")
@click.option("--partition", help="[slurm] Partition (sbatch --partition).")
@click.option("--time", "time_minutes", callback=slurm_time,
              help="[slurm] Time limit of each run: minutes, HH:MM:SS or D-HH:MM:SS (needed with slurm).")
@click.option("--gpus-per-task", type=click.IntRange(min=0), help="[slurm] GPUs of each run.")
@click.option("--cpus-per-task", type=click.IntRange(min=1), help="[slurm] CPUs of each run.")
@click.option("--mem", help="[slurm] Memory of each run, in Slurm's format: 16G, 4000M.")
@click.option("--max-running", type=click.IntRange(min=1), help="[slurm] At most this many runs at once.")
@click.option("--sbatch", multiple=True, callback=sbatch_pairs, metavar="KEY[=VALUE]",
              help="[slurm] Any other sbatch option, repeatable: --sbatch account=mylab --sbatch qos=long.")
@click.option("--wait", is_flag=True, help="[slurm] After submitting, wait until no run is pending or running.")
def sweep(backend_name, depths, modes, seeds, epochs, batch_size, width, data, data_dir, subset, test_subset, out,
          tensorboard, status, launcher, jobs, devices, threads, **slurm):
    """Train every depth x mode x seed (skipping finished runs, resuming unfinished ones), then write
    results.csv, results.md and accuracy_vs_depth.png into --out.

    Run the same command again to go on: with --launcher slurm it reports what is pending, running,
    finished or failed, collects the finished runs and submits again only the failed or unfinished ones.
    """
    for depth in depths:
        check_depth(None, None, depth)
    check_launcher_options(launcher, status, jobs=jobs, devices=devices, **slurm)
    root = Path(out).resolve()
    config = {"width": width, "epochs": epochs, "batch_size": batch_size, "data": data, "subset": subset,
              "test_subset": test_subset}
    if status:
        show_status(plan(root, depths, modes, seeds, config, "auto", None, None, False))
        return
    if devices:
        devices = check_devices(devices, backend_name)  # the CUDA_VISIBLE_DEVICES of each worker
    from minibn.runs import RunFolderError, run_folder_lock
    refuse_other_settings(plan(root, depths, modes, seeds, config, "auto", None, None, False))
    try:
        with run_folder_lock(root):  # one sweep at a time on a folder; each run folder has its own lock too
            if launcher == "local":
                run_locally(root, depths, modes, seeds, config, backend_name, data_dir, tensorboard, jobs, devices,
                            threads)
            else:
                run_on_slurm(root, depths, modes, seeds, config, backend_name, data_dir, tensorboard, threads, slurm)
    except RunFolderError as error:  # another sweep works here, or a run's folder cannot be written
        raise click.ClickException(f"{error}; then run the same sweep again") from None


def refuse_other_settings(specs) -> None:
    """UsageError if a run folder of the grid holds a run (finished or not) of other settings than asked:
    a sweep never mixes runs of other settings (train --resume refuses them likewise)."""
    from minibn.launch.runs import other_settings
    for spec in specs:
        folder = Path(spec.folder)
        if not ((folder / "checkpoint.npz").exists() or (folder / "summary.json").exists()):
            continue  # nothing to keep: the run starts afresh
        if other := other_settings(spec):
            raise click.UsageError(
                f"{folder} holds a run with {', '.join(f'{k} {theirs}' for k, theirs, _ in other)}, but this sweep "
                f"asks for {', '.join(f'{k} {mine}' for k, _, mine in other)}; sweep with the run's settings, or "
                f"choose another --out (or delete {folder} to train it again)")


def check_devices(devices: list[int], backend_name: str | None) -> list[str]:
    """The CUDA_VISIBLE_DEVICES value of each worker of --devices (minibn.launch.devices): each GPU once, on
    CuPy (else each run is "on GPU 0" while it trains on the CPU), among the GPUs this process may see."""
    from minibn.launch.devices import DeviceError, inherited_devices, visible_device_count, worker_devices
    if len(set(devices)) < len(devices):
        raise click.UsageError(f"--devices {','.join(map(str, devices))} names a GPU twice: one run per GPU at a time")
    name = backend_name or os.environ.get("MINIBN_BACKEND") or "auto"
    if name == "numpy":
        raise click.UsageError("--devices gives each run a GPU, but this sweep trains on numpy; leave --devices "
                               "out (--jobs N runs N at once on the CPU)")
    try:
        return worker_devices(devices, visible_device_count(), inherited_devices())
    except DeviceError as error:
        raise click.UsageError(f"--devices: {error}" if not str(error).startswith("--devices") else str(error)) \
            from None


def check_launcher_options(launcher, status, **given):
    """An option of the other launcher is a usage error, not silently ignored."""
    wrong = SLURM_ONLY if launcher == "local" else LOCAL_ONLY
    for name in wrong:
        if given[name] not in (None, False, {}):
            other = "slurm" if launcher == "local" else "local"
            hint = "; on Slurm, --max-running caps the runs at once" if name == "jobs" else ""
            option = "time" if name == "time_minutes" else name.replace("_", "-")
            raise click.UsageError(f"--{option} is an option of --launcher {other}{hint}")
    if launcher == "slurm" and not status and given["time_minutes"] is None:
        raise click.UsageError("--launcher slurm needs --time, the time limit of each run (e.g. --time 12:00:00)")
    if given["devices"] and given["jobs"] and given["jobs"] > len(given["devices"]):
        raise click.UsageError(f"--jobs {given['jobs']} is more than the {len(given['devices'])} --devices: "
                               f"one run per device at a time")


def run_locally(root, depths, modes, seeds, config, backend_name, data_dir, tensorboard, jobs, devices, threads):
    from minibn.data import DataError
    from minibn.fast.threads import threads_from_environment
    from minibn.launch.local import run_here, run_in_processes
    from minibn.launch.slurm import SlurmError, queued_runs
    from minibn.launch.task import load_dataset
    from minibn.train import Interrupted
    in_processes = bool(devices) or (jobs or 1) > 1
    jobs = jobs or (len(devices) if devices else 1)
    if in_processes:  # the workers compute; this process starts them and must not hold a CUDA context
        runs_backend = "cupy" if devices else workers_backend(backend_name)
        threads = threads or max(1, threads_from_environment() // jobs)  # the cores, shared
    else:
        select_backend(backend_name)
        runs_backend = backend.backend_name()
    folder = data_folder(config["data"], data_dir)
    specs = plan(root, depths, modes, seeds, config, runs_backend, folder, threads, tensorboard)
    try:
        on_slurm = queued_runs(specs, root)
    except SlurmError as error:
        raise click.ClickException(str(error)) from None
    if on_slurm:
        console.print(f"[yellow]leaving {len(on_slurm)} runs to their Slurm jobs, pending or running: "
                      f"{', '.join(sorted(on_slurm))}[/yellow]")
    todo = [spec for spec in specs if not finished(spec) and spec.name not in on_slurm]
    console.print(f"{sum(map(finished, specs))} of {len(specs)} runs finished; {len(todo)} to train on "
                  f"{runs_backend}" + (f", {jobs} at a time, {threads} threads each" if in_processes else ""))
    try:
        if in_processes:
            failed = run_in_processes(todo, jobs, devices, root / "logs", console)
        else:
            failed = run_here(todo, load_dataset(todo[0]), console) if todo else []  # the data set once, for all
    except DataError as error:
        raise click.ClickException(str(error)) from None
    except (Interrupted, KeyboardInterrupt) as stop:
        what = str(stop) if isinstance(stop, Interrupted) else "interrupted: every running run saved a checkpoint"
        raise click.ClickException(f"{what}; run the same sweep again to go on") from None
    report_results(specs, root, required=not failed)
    if failed:
        raise click.ClickException(f"{len(failed)} of {len(todo)} runs failed or stopped ({', '.join(failed)}); "
                                   f"see why above (and in {root / 'logs'} with --jobs), fix it, then run the "
                                   f"same sweep again: it resumes them from their checkpoints")


def workers_backend(backend_name: str | None) -> str:
    """The backend of the worker processes: --backend (or $MINIBN_BACKEND), and for auto, CuPy if a GPU is
    visible, asked of a child process (minibn.launch.devices), so that this one makes no CUDA context."""
    from minibn.launch.devices import DeviceError, visible_device_count
    name = backend_name or os.environ.get("MINIBN_BACKEND") or "auto"
    if name == "numpy":
        return name
    try:
        count = visible_device_count()
    except DeviceError as error:
        if name == "auto":
            return "numpy"
        raise click.ClickException(f"--backend cupy: {error}") from None  # said once, not by every worker
    if name == "cupy" and count == 0:
        raise click.ClickException("--backend cupy: no CUDA device is visible here")
    return "cupy" if count > 0 else "numpy"


def run_on_slurm(root, depths, modes, seeds, config, backend_name, data_dir, tensorboard, threads, slurm):
    from minibn.launch.slurm import SlurmError, SlurmOptions, states, submit
    folder = data_folder(config["data"], data_dir)  # found (or downloaded) once, here, for every task
    runs_backend = backend_name or os.environ.get("MINIBN_BACKEND") or "auto"  # decided on each node
    threads = threads or slurm["cpus_per_task"] or 1
    specs = plan(root, depths, modes, seeds, config, runs_backend, folder, threads, tensorboard)
    options = SlurmOptions(slurm["time_minutes"], slurm["partition"], slurm["gpus_per_task"], slurm["cpus_per_task"],
                           slurm["mem"], slurm["max_running"], slurm["sbatch"])
    try:
        todo = [spec for spec, state, _, _ in states(specs, root) if state not in ("finished", "pending", "running")]
        if todo:
            array = submit(todo, options, root)
            console.print(f"submitted {len(todo)} of {len(specs)} runs as Slurm job {array} "
                          f"(logs: {root / 'slurm'})")
        else:
            console.print("nothing to submit: every run is finished, pending or running")
        if slurm["wait"]:
            wait_for_queue(specs, root)
        counts = show_status(specs)
    except SlurmError as error:
        raise click.ClickException(str(error)) from None
    report_results(specs, root, required=False)
    if slurm["wait"] and counts["failed"]:
        raise click.ClickException(f"{counts['failed']} of {len(specs)} runs failed (see the note column); fix "
                                   f"the cause, then run the same sweep again: it resubmits them")


def wait_for_queue(specs, root) -> None:
    from minibn.launch.slurm import states
    last = None
    while True:
        counts = Counter(state for _, state, _, _ in states(specs, root))
        if counts != last:
            console.print(time.strftime("%H:%M:%S ") + ", ".join(f"{n} {state}" for state, n in sorted(counts.items())))
            last = counts
        if not counts["pending"] and not counts["running"]:
            return
        time.sleep(WAIT_SECONDS)
