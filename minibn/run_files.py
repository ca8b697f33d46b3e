"""The files of a run folder: metrics.jsonl, config.json and summary.json, read with a size limit and written
atomically, by the process that holds the folder's lock (minibn/runs.py).

metrics.jsonl is appended by rewriting it whole (files.atomic_write): a full disk fails the
write, not the file. A torn last line (left by another writer, or an older minibn) is left out
when reading and repaired when the run is resumed.
"""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from minibn.files import write_text_atomically
from minibn.runs import RunFolderError, check_still_locked

# ---- the metrics log ---------------------------------------------------------------------------
RECORDS_LIMIT = 64 << 20  # bytes of a metrics.jsonl: about 200,000 epochs' lines
RECORD_NUMBERS = ("train_loss", "test_acc", "seconds")  # in every record; what plot and the summary read


def read_records(path: Path) -> tuple[list[dict], bool]:
    """The records of a metrics.jsonl, and whether its last line was torn (a write cut short) and left out.

    A record holds an integer "epoch" and the numbers RECORD_NUMBERS. A bad line anywhere but at the end is not
    a torn write: ValueError naming the file and line. So is a file
    over RECORDS_LIMIT bytes (a stray 40 GB file is not read).
    """
    try:
        with open(path, "rb") as file:
            data = file.read(RECORDS_LIMIT + 1)
    except OSError as error:
        raise ValueError(f"cannot read {path} ({error.strerror})") from None
    if len(data) > RECORDS_LIMIT:
        raise ValueError(f"{path} is over {RECORDS_LIMIT >> 20} MiB, not a log minibn wrote (one short line an epoch); "
                         "move it away, or start the run again")
    lines = data.decode(errors="replace").splitlines()
    records, torn = [], False
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or not isinstance(record.get("epoch"), int) or not all(
                    type(record.get(name)) in (int, float) for name in RECORD_NUMBERS):
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
    check_still_locked(path.parent)
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
    check_still_locked(path.parent)
    try:
        write_text_atomically(path, json.dumps(value, indent=2) + "\n")
    except OSError as error:
        raise RunFolderError(f"could not write {path} ({error.strerror})") from None


# ---- comparing configs ------------------------------------------------------------------------
def read_small_json(path: Path, limit: int = 1 << 20):
    """A JSON file of at most ``limit`` bytes (a run's config or summary is a few kB; a stray 40 GB file is not
    read, a FIFO not waited on): ValueError naming it if it is larger, not a file or not JSON, OSError if it
    cannot be read."""
    with open(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as file:  # a FIFO's open would wait for a writer
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            raise ValueError(f"{path} is not a regular file: not a file minibn wrote")
        text = file.read(limit + 1)
    if len(text) > limit:
        raise ValueError(f"{path} is over {limit >> 20} MiB: not a file minibn wrote")
    return json.loads(text)


def read_config(folder: Path) -> dict:
    """A run's config.json, or {} if it is missing or unreadable (a resumed run rewrites it)."""
    try:
        value = read_small_json(Path(folder) / "config.json")
        return value if isinstance(value, dict) else {}
    except (OSError, ValueError):
        return {}


def differences(saved: dict, asked: dict, ignore: tuple[str, ...] = ()) -> list[tuple[str, object, object]]:
    """(key, saved value, asked value) for every key of both whose values differ.

    A key that ``saved`` lacks is not a difference: an older minibn did not write it.
    """
    return [(key, saved[key], value) for key, value in asked.items()
            if key not in ignore and key in saved and saved[key] != value]
