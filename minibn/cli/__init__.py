"""The `minibn` command line: info, gradcheck, train, eval, bench, plot, analyze, sweep.

Every command takes --backend. Errors a user can cause end as one line (a click usage error
or "Error: ..."), never a traceback.
"""
from minibn.cli import analysis, bench, info, sweep, train  # noqa: F401  (each registers its commands on main)
from minibn.cli.common import main

__all__ = ["main"]
