"""The local launcher: the runs one after another in this process, or N at once as worker processes.

With --jobs N, up to N worker processes run at once, one run each (`python -m minibn.launch.task`);
a run is handed to exactly one worker, so no two processes ever write one run folder. With
--devices 0,1,... each worker sees only its own GPU (CUDA_VISIBLE_DEVICES), one run per GPU at a
time. A worker's output goes to <sweep>/logs/<run>.log.

The workers run in their own sessions, so that a signal reaches them once, through the launcher, whoever
sent it (Ctrl-C in a terminal, or `kill -INT` to the launcher alone): the launcher passes Ctrl-C (SIGINT)
or SIGTERM on, each worker saves its checkpoint and stops, and the launcher waits for them. A second
Ctrl-C is passed on too: the workers then stop at once (see minibn/stop_signals.py).
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
    """One run after another in this process; Ctrl-C (Interrupted) ends the sweep. Returns the runs that
    stopped (a NaN loss...): the next run goes on, and the next sweep resumes them."""
    from minibn.train import TrainingStopped
    failed = []
    for spec in specs:
        console.print(f"[bold]{spec.name}[/bold] -> {spec.folder}")
        try:
            train_one(spec, dataset, console)
        except (TrainingStopped, ValueError) as error:
            console.print(f"[red]{spec.name} stopped: {escape(str(error))}[/red]")
            failed.append(spec.name)
    return failed


def last_line(log: Path) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()] if log.exists() else []
    return lines[-1].strip() if lines else "(no output)"


def run_in_processes(specs: list[RunSpec], jobs: int, devices: list[int] | None, logs: Path, console) -> list[str]:
    """Up to ``jobs`` worker processes at once, each given one run; the runs that failed.

    KeyboardInterrupt (Ctrl-C, or SIGTERM passed on) is raised once every worker has saved and stopped.
    """
    logs.mkdir(parents=True, exist_ok=True)
    waiting, running, failed = list(specs), {}, []  # running: Popen -> (spec, device, log file)
    free_devices = list(devices or [])

    told = set()  # the workers a stop signal was passed on to

    def pass_on(signum) -> None:
        for process in running:
            if process.poll() is None and process not in told:
                process.send_signal(signum)
                told.add(process)

    def pass_sigterm_on(signum, frame):
        pass_on(signal.SIGTERM)
        raise KeyboardInterrupt
    previous = signal.signal(signal.SIGTERM, pass_sigterm_on)
    try:
        while waiting or running:
            while waiting and len(running) < jobs:
                spec = waiting.pop(0)
                device = free_devices.pop(0) if devices else None
                env = dict(os.environ)
                if device is not None:
                    env["CUDA_VISIBLE_DEVICES"] = str(device)
                log = open(logs / f"{spec.name}.log", "a")
                process = subprocess.Popen(command(spec), stdout=log, stderr=subprocess.STDOUT, env=env,
                                           start_new_session=True)  # signals reach it through pass_on only
                running[process] = (spec, device, log)
                where = "" if device is None else f" on GPU {device}"
                console.print(f"started {spec.name}{where} (pid {process.pid}, log {log.name})")
            time.sleep(POLL_SECONDS)
            for process in [p for p in running if p.poll() is not None]:
                spec, device, log = running.pop(process)
                log.close()
                if device is not None:
                    free_devices.append(device)
                if process.returncode == 0:
                    console.print(f"[green]finished {spec.name}[/green]")
                else:
                    failed.append(spec.name)
                    console.print(f"[red]{spec.name} stopped (exit {process.returncode}): "
                                  f"{escape(last_line(Path(log.name)))}[/red]")
    except KeyboardInterrupt:
        pass_on(signal.SIGINT)  # unless SIGTERM was passed on already
        for process, (spec, _, log) in running.items():
            while True:
                try:
                    process.wait()  # it is saving its checkpoint
                    break
                except KeyboardInterrupt:  # a second Ctrl-C: pass it on, the workers stop at once
                    told.clear()
                    pass_on(signal.SIGINT)
            log.close()
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    return failed
