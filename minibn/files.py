"""Writing files so that a crash, Ctrl-C or a full disk never leaves one half-written.

Every file of a run folder (checkpoint, log, config, summary) is written whole into a
temporary file beside it, then renamed over the old one: a rename within a folder is
atomic, so a reader (or a resumed run) sees the old file or the new one, never a mix.
"""
from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import BinaryIO, Callable

TEMP_PREFIX = ".tmp-"  # temporaries start with this; a run removes the ones a killed writer left


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Write ``path`` through ``write(file)`` into a temporary beside it, then rename it into place.

    On any error (OSError for a full disk, or KeyboardInterrupt) the temporary is removed and the
    old file, if any, is left as it was. The new file gets the mode every new file gets (0o666 less
    the umask, by ``open``'s "x" mode), so a checkpoint is as readable as the run's other files;
    tempfile.mkstemp would make it 0o600.
    """
    path = os.fspath(path)
    folder, suffix = os.path.dirname(os.path.abspath(path)), os.path.splitext(path)[1]
    while True:
        tmp = os.path.join(folder, f"{TEMP_PREFIX}{secrets.token_hex(6)}{suffix}")
        try:
            file = open(tmp, "xb")  # exclusive: never another writer's temporary
            break
        except FileExistsError:
            continue
    try:
        with file:
            write(file)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def write_text_atomically(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda file: file.write(text.encode()))


def remove_stale_temporaries(folder: Path) -> list[str]:
    """Delete the temporaries that a killed writer left in ``folder`` (call it only as its one writer)."""
    removed = []
    for path in sorted(Path(folder).glob(f"{TEMP_PREFIX}*")):
        if path.is_file():
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path.name)
    return removed
