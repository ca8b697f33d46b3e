"""The `minibn` command line: info, gradcheck, train, eval, bench, plot, analyze, sweep.

Every command takes --backend. Errors a user can cause end as one line (a click usage error
or "Error: ..."), never a traceback.
"""
try:
    from minibn.cli import analysis, bench, gradcheck, info, sweep, train  # noqa: F401  (each registers its commands on main)
    from minibn.cli.common import main
except KeyboardInterrupt:  # Ctrl-C while the `minibn` command starts up: end quietly, as a shell command does
    raise SystemExit(130) from None

__all__ = ["main"]
