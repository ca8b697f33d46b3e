"""Stopping a training run cleanly when asked to by a signal: Ctrl-C, or a scheduler's SIGTERM or SIGUSR1."""
from __future__ import annotations

import signal


class StopSignals:
    """While a run trains, Ctrl-C (SIGINT), SIGTERM (a scheduler stopping or preempting the job) and SIGUSR1
    (the warning that `minibn sweep --launcher slurm` asks for before the time limit) ask it to stop: the
    training loop calls check() before each step, which raises KeyboardInterrupt, and run() saves a
    checkpoint and exits. Not at once: a KeyboardInterrupt raised in the middle of a step (the weights
    updated, the step not yet counted) would save a checkpoint that resumes differently from a run left
    alone. A second signal stops at once. Installed on creation; restore() puts the old handlers back."""

    def __init__(self):
        self.requested = False
        self.previous = {}
        for name in ("SIGINT", "SIGTERM", "SIGUSR1"):
            signum = getattr(signal, name, None)  # Windows has no SIGUSR1
            try:
                if signum is not None:
                    self.previous[signum] = signal.signal(signum, self.handler)
            except ValueError:  # not the main thread (e.g. inside some test runners): leave the signals alone
                break

    def handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def check(self) -> None:
        if self.requested:
            raise KeyboardInterrupt

    def restore(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
