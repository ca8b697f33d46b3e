"""Run folders: one writer at a time, and a metrics log that is never left torn.

A run folder is locked while a process writes it: ``run_folder_lock`` takes an exclusive
``flock`` on ``<folder>/.lock`` and writes who holds it (pid, host, command) into that file,
so a second writer is refused with a message that names the first. The kernel drops the
lock when the process ends, however it ends (Ctrl-C, crash, SIGKILL): a lock is never stale.
On NFS, Linux maps flock to the server's POSIX locks, so two machines are kept apart too.

metrics.jsonl is appended by rewriting it whole (files.atomic_write): a full disk fails the
write, not the file. A torn last line (left by another writer, or an older minibn) is left out
when reading and repaired when the run is resumed.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import sys
from pathlib import Path

from minibn.files import TEMP_PREFIX, write_text_atomically

try:
    import fcntl
except ImportError:  # Windows: no flock; run folders are not locked there
    fcntl = None

LOCK_NAME = ".lock"


class RunFolderError(Exception):
    """A run folder cannot be used or written: the message names it and says what to do."""


# ---- one writer per folder --------------------------------------------------------------------
_held: dict[str, int] = {}  # real path of a folder this process has locked -> how many `with` blocks hold it


@contextlib.contextmanager
def run_folder_lock(folder: Path, create: bool = True):
    """Hold the lock of ``folder`` (creating the folder if ``create``) for the ``with`` block.

    Re-entrant within a process (the CLI locks before loading data, then ``train.run`` again).
    A folder this call created and left holding only the lock file is removed again, so an
    error before the run wrote anything leaves no empty run folder behind.
    """
    key = os.path.realpath(folder)
    if key in _held:
        _held[key] += 1
        try:
            yield folder
        finally:
            _held[key] -= 1
        return
    fd, created = _acquire(Path(folder), create)
    _held[key] = 1
    try:
        yield folder
    finally:
        del _held[key]
        _release(Path(folder), fd, created)


def _acquire(folder: Path, create: bool) -> tuple[int, bool]:
    """(open lock file, whether the folder was created); RunFolderError if it is held or cannot be written."""
    created = False
    while True:  # again only if the holder we met removed its empty folder as we opened the lock file
        if create:
            created = _make_folder(folder) or created
        try:
            fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
        except FileNotFoundError:
            raise RunFolderError(f"there is no run folder {folder}") from None
        except OSError as error:
            raise _cannot_write(folder, error) from None
        if fcntl is None:
            return fd, created
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            holder = _holder(fd)
            os.close(fd)
            if isinstance(error, BlockingIOError):
                raise RunFolderError(f"{folder} is being written by {holder}; wait for it to end (or stop it), "
                                     f"or choose another --out") from None
            raise RunFolderError(f"cannot lock {folder / LOCK_NAME} ({error.strerror})") from None
        if _still_there(fd, folder / LOCK_NAME):
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(_me()) + "\n").encode(), 0)
        probe = folder / f"{TEMP_PREFIX}probe-{os.getpid()}"  # every file is written through a new temporary
        probe.touch()
        probe.unlink()
    except OSError as error:
        _release(folder, fd, created)
        raise _cannot_write(folder, error) from None
    return fd, created


def _cannot_write(folder: Path, error: OSError) -> RunFolderError:
    return RunFolderError(f"cannot write in the run folder {folder} ({error.strerror}); free some space or fix "
                          f"its permissions, or choose another --out")


def _make_folder(folder: Path) -> bool:
    """Create ``folder``; True if it was not there. RunFolderError if it cannot be a folder."""
    try:
        folder.mkdir(parents=True)
        return True
    except FileExistsError:
        if folder.is_dir():
            return False
        raise RunFolderError(f"{folder} exists and is not a folder (a file, or a broken or looping link); "
                             f"choose another --out") from None
    except OSError as error:
        raise RunFolderError(f"cannot create the run folder {folder} ({error.strerror}); "
                             f"choose another --out") from None


def _still_there(fd: int, path: Path) -> bool:
    """Is the locked file still the one at ``path`` (not unlinked by the holder we waited for)?"""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def _release(folder: Path, fd: int, created: bool) -> None:
    try:
        if created and os.listdir(folder) == [LOCK_NAME]:
            os.unlink(folder / LOCK_NAME)
            os.rmdir(folder)
        else:
            os.ftruncate(fd, 0)  # nobody holds it now
    except OSError:
        pass
    finally:
        os.close(fd)  # drops the flock


def _me() -> dict:
    program = "minibn" if sys.argv[0].endswith(("__main__.py", "minibn")) else Path(sys.argv[0]).name
    command = " ".join([program, *sys.argv[1:]])
    return {"pid": os.getpid(), "host": socket.gethostname(), "command": command[:120],
            "since": datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")}


def _holder(fd: int) -> str:
    """Who holds the lock, from what they wrote into the lock file."""
    try:
        info = json.loads(os.pread(fd, 4096, 0))
        return f"pid {info['pid']} on {info['host']} since {info['since']} ({info['command']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


# ---- the metrics log ---------------------------------------------------------------------------
def read_records(path: Path) -> tuple[list[dict], bool]:
    """The records of a metrics.jsonl, and whether its last line was torn (a write cut short) and left out.

    A bad line anywhere but at the end is not a torn write: ValueError naming the file and line.
    """
    try:
        lines = Path(path).read_bytes().decode(errors="replace").splitlines()
    except OSError as error:
        raise ValueError(f"cannot read {path} ({error.strerror})") from None
    records, torn = [], False
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or not isinstance(record.get("epoch"), int):
                raise ValueError("not a record")
        except ValueError:
            if number == len(lines):
                torn = True
                continue
            raise ValueError(f"{path} line {number} is not a metrics record; delete that line") from None
        records.append(record)
    return records, torn


def write_records(path: Path, records: list[dict]) -> None:
    """Replace the log with ``records``, one JSON line each, atomically (RunFolderError if it fails)."""
    try:
        write_text_atomically(path, "".join(json.dumps(r) + "\n" for r in records))
    except OSError as error:
        raise RunFolderError(f"could not write {path} ({error.strerror})") from None


def append_record(path: Path, record: dict) -> None:
    """Add one line to the log. The whole file is rewritten (a few kB), so the append is atomic."""
    records, _ = read_records(path) if path.exists() else ([], False)
    write_records(path, [*records, record])


def write_json(path: Path, value: dict) -> None:
    """config.json or summary.json, atomically (RunFolderError if it fails)."""
    try:
        write_text_atomically(path, json.dumps(value, indent=2) + "\n")
    except OSError as error:
        raise RunFolderError(f"could not write {path} ({error.strerror})") from None


# ---- comparing configs ------------------------------------------------------------------------
def read_config(folder: Path) -> dict:
    """A run's config.json, or {} if it is missing or unreadable (a resumed run rewrites it)."""
    try:
        value = json.loads((Path(folder) / "config.json").read_text())
        return value if isinstance(value, dict) else {}
    except (OSError, ValueError):
        return {}


def differences(saved: dict, asked: dict, ignore: tuple[str, ...] = ()) -> list[tuple[str, object, object]]:
    """(key, saved value, asked value) for every key of both whose values differ.

    A key that ``saved`` lacks is not a difference: an older minibn did not write it.
    """
    return [(key, saved[key], value) for key, value in asked.items()
            if key not in ignore and key in saved and saved[key] != value]
