"""The local launcher: the runs one after another in this process, or N at once as worker processes.

With --jobs N, up to N worker processes run at once, one run each (`python -m minibn.launch.task`);
a run is handed to exactly one worker, so no two processes ever write one run folder. With
--devices 0,1,... each worker sees only its own GPU (CUDA_VISIBLE_DEVICES), one run per GPU at a
time. A worker's output goes to <sweep>/logs/<run>.log.

The workers run in their own sessions, so that a signal reaches them once, through the launcher, whoever
sent it (Ctrl-C in a terminal, or `kill -INT` to the launcher alone): the launcher passes Ctrl-C (SIGINT)
or SIGTERM on, each worker saves its checkpoint and stops, and the launcher waits for them. A second
Ctrl-C is passed on too: the workers then stop at once (see minibn/stop_signals.py). A launcher that is
killed (SIGKILL, which it cannot pass on) leaves no worker behind: each watches a pipe from it.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from rich.markup import escape

from minibn.launch.runs import RunSpec
from minibn.launch.task import command, train_one

POLL_SECONDS = 0.2


def run_here(specs: list[RunSpec], dataset, console) -> list[str]:
    """One run after another in this process; Ctrl-C or SIGTERM ends the sweep (Interrupted). Returns the
    runs that stopped (a NaN loss...): the next run goes on, and the next sweep resumes them.

    One StopSignals serves every run: a signal that lands after a run's last step (as it evaluates its last
    epoch, or saves) lets that run finish, then stops the sweep instead of being forgotten with the run.
    """
    from minibn.stop_signals import StopSignals
    from minibn.train import Interrupted, TrainingStopped
    failed = []
    stop = StopSignals()
    try:
        for spec in specs:
            if stop.requested:
                raise Interrupted(f"stopped as asked (Ctrl-C or SIGTERM) before {spec.name}; the runs before it "
                                  f"are saved")
            console.print(f"[bold]{spec.name}[/bold] -> {spec.folder}")
            try:
                train_one(spec, dataset, console, stop)
            except (TrainingStopped, ValueError) as error:
                console.print(f"[red]{spec.name} stopped: {escape(str(error))}[/red]")
                failed.append(spec.name)
        if stop.requested:
            raise Interrupted("stopped as asked (Ctrl-C or SIGTERM) after the last run finished")
    finally:
        stop.restore()
    return failed


def last_line(log: Path) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()] if log.exists() else []
    return lines[-1].strip() if lines else "(no output)"


def run_in_processes(specs: list[RunSpec], jobs: int, devices: list[str] | None, logs: Path, console) -> list[str]:
    """Up to ``jobs`` worker processes at once, each given one run; the runs that failed or stopped.
    ``devices``: the CUDA_VISIBLE_DEVICES of each GPU (minibn.launch.devices), one worker per GPU.

    Ctrl-C or SIGTERM is noted by a handler and passed on to every running worker from the loop (a second one
    too, which stops them at once); no new worker starts, and Interrupted is raised once every worker has
    saved and stopped. The handler only notes the signal, so none is lost, wherever in the loop it lands.
    """
    from minibn.train import Interrupted
    logs.mkdir(parents=True, exist_ok=True)
    waiting, running, failed = list(specs), {}, []  # running: Popen -> (spec, device)
    free_devices = list(devices or [])
    received, passed_on = [], 0  # the stop signals received, and how many of them the workers were sent

    def note(signum, frame):
        received.append(signum)
    previous = {signum: signal.signal(signum, note) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        while running or (waiting and not received):
            while waiting and not received and len(running) < jobs:
                spec = waiting.pop(0)
                device = free_devices.pop(0) if devices else None
                running[start_worker(spec, device, logs, console)] = (spec, device)
            for signum in received[passed_on:]:
                for process in running:
                    if process.poll() is None:
                        process.send_signal(signum)
            passed_on = len(received)
            time.sleep(POLL_SECONDS)
            for process in [p for p in running if p.poll() is not None]:
                spec, device = running.pop(process)
                process.stdin.close()
                if device is not None:
                    free_devices.append(device)
                if process.returncode == 0:
                    console.print(f"[green]finished {spec.name}[/green]")
                else:
                    failed.append(spec.name)
                    console.print(f"[red]{spec.name} stopped (exit {process.returncode}): "
                                  f"{escape(last_line(logs / f'{spec.name}.log'))}[/red]")
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if received:
        raise Interrupted("interrupted: every running run saved a checkpoint")
    return failed


def start_worker(spec: RunSpec, device: str | None, logs: Path, console) -> subprocess.Popen:
    """A worker process for ``spec``, logging to logs/<run>.log.

    It runs in its own session, so that a signal reaches it once, through the launcher, whoever sent it.
    Its standard input is a pipe from the launcher, which ends when the launcher ends, even killed: the
    worker then saves and stops (minibn.launch.task.end_with_the_launcher).
    """
    env = dict(os.environ)
    if device is not None:
        env["CUDA_VISIBLE_DEVICES"] = device
    with open(logs / f"{spec.name}.log", "a") as log:
        process = subprocess.Popen(command(spec), stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
                                   env=env, start_new_session=True)
    where = "" if device is None else f" on GPU {device} (CUDA_VISIBLE_DEVICES)"
    console.print(f"started {spec.name}{where} (pid {process.pid}, log {log.name})")
    return process
