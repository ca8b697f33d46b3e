"""The fast versions of ops, by name: where F.conv2d, F.batch_norm(_relu), F.global_avg_pool2d, F.cross_entropy and
SGD's update look first (and train.py for its optimizer and evaluation's scratch, checks.py for more checks).

Empty unless a fast package fills it (minibn/fast/__init__.py does when it is imported: by ``import
minibn``, by the commands, or by ``minibn.fast.use(...)``). A fast version takes the op's arguments and
returns its result, or None where it does not apply (another device, a shape it was not written for);
then the caller runs the textbook op. The core never imports the fast package.
"""
from __future__ import annotations

import contextlib
from typing import Callable

fast_versions: dict[str, Callable] = {}  # op name -> its fast version


def run_fast(name: str, *args, **kwargs):
    """The fast version of op ``name`` run on these arguments, or None: then run the textbook op."""
    fast = fast_versions.get(name)
    return None if fast is None else fast(*args, **kwargs)


def one_off_shapes():
    """A block of shapes seen once (an evaluation's batch): what a fast package kept for them is given back after."""
    return fast_versions.get("one_off_shapes", contextlib.nullcontext)()
