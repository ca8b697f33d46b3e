"""Run folders: one writer at a time, and a metrics log that is never left torn.

A run folder is locked while a process writes it: ``run_folder_lock`` takes an exclusive
``flock`` on the folder itself and writes who holds it (pid, host, command) into ``.lock``, so
a second writer is refused with a message that names the first. The lock is the folder, not the
file: deleting ``.lock``, or replacing it by a link, lets no second writer in, and ``.lock`` is
only ever replaced (renamed over), never opened through a link. The kernel drops the lock when
the process ends, however it ends (Ctrl-C, crash, SIGKILL): a lock is never stale. On NFS, which
cannot flock a folder, ``.lock`` itself is locked (opened without following a link), and Linux
maps that flock to the server's POSIX locks, so two machines are kept apart too.

What a run folder holds, and how it is read and written, is minibn/run_files.py.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import stat
import sys
from pathlib import Path

from minibn.files import TEMP_PREFIX, atomic_write

try:
    import fcntl
except ImportError:  # Windows: no flock; run folders are not locked there
    fcntl = None

LOCK_NAME = ".lock"


class RunFolderError(Exception):
    """A run folder cannot be used or written: the message names it and says what to do."""


# ---- one writer per folder --------------------------------------------------------------------
_held: dict[str, int] = {}  # real path of a folder this process has locked -> how many `with` blocks hold it
_locks: dict[str, "_Lock"] = {}  # the same real path -> its lock, for check_still_locked


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
    lock = _acquire(Path(folder), create)
    _held[key], _locks[key] = 1, lock
    try:
        yield folder
    finally:
        del _held[key], _locks[key]
        lock.release()


def check_still_locked(folder: Path) -> None:
    """Before a write into ``folder``: RunFolderError if this process locked it and what is at its path now is
    not what it locked (the folder was moved aside, removed or replaced while the run wrote it: a second run
    may have locked the new one, and two runs would write one folder). A folder not locked here passes."""
    lock = _locks.get(os.path.realpath(folder))
    if lock is not None and lock.fd is not None and not _still_there(
            lock.fd, Path(folder) / LOCK_NAME if lock.on_file else Path(folder)):
        raise RunFolderError(f"{folder} was moved, removed or replaced while this run wrote it: the run stops and "
                             f"writes nothing into what is there now")


class _Lock:
    """A held lock: ``fd`` is the locked folder (or, on NFS, the locked .lock file)."""

    def __init__(self, folder: Path, fd: int | None, on_file: bool, created: bool):
        self.folder, self.fd, self.on_file, self.created = folder, fd, on_file, created

    def write_holder(self) -> None:
        """Say who holds the lock in .lock; OSError if the folder cannot be written."""
        me = (json.dumps(_me()) + "\n").encode()
        if self.on_file:
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, me, 0)
            atomic_write(self.folder / f"{TEMP_PREFIX}probe", lambda file: None)  # every file goes through one
            os.unlink(self.folder / f"{TEMP_PREFIX}probe")
        else:  # a new file renamed over .lock: whatever was there (a link, a fifo) is replaced, never opened
            atomic_write(self.folder / LOCK_NAME, lambda file: file.write(me))

    def release(self) -> None:
        try:
            if self.created and os.listdir(self.folder) == [LOCK_NAME]:
                os.unlink(self.folder / LOCK_NAME)
                os.rmdir(self.folder)
            elif self.on_file:
                os.ftruncate(self.fd, 0)  # nobody holds it now; the file stays, as other processes may hold it open
            else:
                os.unlink(self.folder / LOCK_NAME)
        except OSError:
            pass
        finally:
            if self.fd is not None:
                os.close(self.fd)  # drops the flock


def _acquire(folder: Path, create: bool) -> _Lock:
    """The folder's lock, held; RunFolderError if another process holds it or the folder cannot be written."""
    created = False
    while True:  # again only if the holder we met removed its empty folder as we locked it
        if create:
            created = _make_folder(folder) or created
        elif not folder.is_dir():
            raise RunFolderError(f"there is no run folder {folder}")
        if fcntl is None:
            lock = _Lock(folder, None, False, created)
            break
        fd, on_file = _locked_fd(folder)
        if _still_there(fd, folder / LOCK_NAME if on_file else folder):
            lock = _Lock(folder, fd, on_file, created)
            break
        os.close(fd)
    try:
        lock.write_holder()
    except OSError as error:
        lock.release()
        if os.path.isdir(folder / LOCK_NAME):
            raise RunFolderError(f"{folder / LOCK_NAME} is a folder, where minibn writes who is writing the "
                                 f"run; delete it") from None
        raise _cannot_write(folder, error) from None
    return lock


def _locked_fd(folder: Path) -> tuple[int, bool]:
    """(fd, whether it is the .lock file) holding an exclusive flock on the folder.

    The folder itself is locked: deleting or replacing .lock cannot let a second writer in. Where a
    folder cannot be flocked (NFS maps flock to POSIX locks, which need a file open for writing),
    .lock is locked instead, opened without following a link.
    """
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as error:
        raise _cannot_write(folder, error) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd, False
    except BlockingIOError:
        os.close(fd)
        raise _held_by_another(folder) from None
    except OSError:
        os.close(fd)
    try:
        fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o666)
    except OSError as error:
        raise RunFolderError(f"cannot open {folder / LOCK_NAME} ({error.strerror}); if it is a link or not "
                             f"a file, delete it (no minibn process is writing {folder})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise RunFolderError(f"{folder / LOCK_NAME} is not a file; delete it")
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd, True
    except BlockingIOError:
        os.close(fd)
        raise _held_by_another(folder) from None
    except OSError as error:
        os.close(fd)
        raise RunFolderError(f"cannot lock {folder / LOCK_NAME} ({error.strerror})") from None


def _held_by_another(folder: Path) -> RunFolderError:
    return RunFolderError(f"{folder} is being written by {_holder(folder)}; wait for it to end (or stop it), "
                          f"or choose another --out")


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
    """Is what we locked still at ``path`` (not removed by the holder we waited for)?"""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


def _me() -> dict:
    program = "minibn" if sys.argv[0].endswith(("__main__.py", "minibn")) else Path(sys.argv[0]).name
    command = " ".join([program, *sys.argv[1:]])
    return {"pid": os.getpid(), "host": socket.gethostname(), "command": command[:120],
            "since": datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")}


def _holder(folder: Path) -> str:
    """Who holds the lock, from what they wrote into .lock (read without following a link, 4 kB at most)."""
    try:
        fd = os.open(folder / LOCK_NAME, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        try:
            text = os.pread(fd, 4096, 0) if stat.S_ISREG(os.fstat(fd).st_mode) else b""
        finally:
            os.close(fd)
        info = json.loads(text)
        return f"pid {int(info['pid'])} on {info['host']} since {info['since']} ({info['command']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"
