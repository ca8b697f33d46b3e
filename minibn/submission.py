"""Grading one student's file in its own process, so that nothing in it can stop or fool the grading of the rest.

``grade_file`` starts ``python -m minibn.student_process`` (minibn/student_process.py) in a temporary
folder that the grader made and removes, sends it the source read up front and the run's inputs on
its standard input, and reads back frames of arrays from its standard output, at most RESULTS_LIMIT
bytes, loaded with ``allow_pickle=False`` after each array's header is checked against its size.
The verdicts are decided here, from the grader's own copies of the inputs (minibn/grading.py). So an
``exit()``, a crash, an endless loop (``--timeout``), garbage on the channel or an import error end as
that file's error row, with the checks done so far kept, and the grader goes on with the next file.
What the student prints goes to the child's standard error, of which only the head and tail are kept.

A child process is not a sandbox: the student's code runs with the grader's rights. It can read and
write files, use the network and start processes (those in its process group are killed with it).
This guards against accidents and against attacks on the grade of *other* files; see
lessons/INSTRUCTORS.md for what remains and for running the grader in a container.
"""
from __future__ import annotations

import io
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from minibn.class_folder import Submission
from minibn.grading import Record, grade_case, printable, student_message

DEFAULT_TIMEOUT = 60.0   # seconds per file: the reference solutions take about one
OUTPUT_KEPT = 2000       # bytes of a file's printing kept from its start, and as many from its end
RESULTS_LIMIT = 16 << 20  # bytes read back from one file's process: its arrays take a few hundred kB at most
FILE_CHECK = "the file"  # the check name of a row about the whole file


@dataclass
class Graded:
    """One file's verdict: its exercise ("" if unknown), one record per checked input, and what it printed."""
    path: str
    name: str
    exercise: str
    records: list[Record]
    output: str


def grade_file(submission: Submission, cases: dict[str, list], backend_name: str,
               timeout: float = DEFAULT_TIMEOUT) -> Graded:
    """Grade one submission against ``cases`` (exercise -> its cases) in a child that may run ``timeout`` s."""
    exercise = submission.exercise
    if submission.problem:
        return Graded(submission.path, submission.name, exercise,
                      [Record(exercise, FILE_CHECK, "", "error", message=submission.problem)], "")
    if exercise:  # its top level names the exercise: graded on that one's cases alone, whatever it names later
        cases = {exercise: cases[exercise]}
    folder = tempfile.mkdtemp(prefix="minibn-grade-")
    try:
        minibn_root = str(Path(__file__).resolve().parents[1])  # the child imports this very minibn
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (minibn_root, os.environ.get("PYTHONPATH"))
                                                          if p)}
        # cwd: the grader's own empty folder, which -m puts first on sys.path
        child = subprocess.Popen([sys.executable, "-m", "minibn.student_process", backend_name],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=folder,
                                 env=env, start_new_session=True)  # its own process group: killed as one
        threads = [threading.Thread(target=_send, args=(child.stdin, _payload(submission, cases)), daemon=True),
                   frames := _FrameReader(child), output := _OutputKeeper(child.stderr)]
        for thread in threads:
            thread.start()
        timed_out = False
        try:
            child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:  # also on Ctrl-C in the grader, and for what the file started in the background
            _kill_group(child)
            child.wait()
            for thread in threads:
                thread.join(timeout=5)  # unless something the file started left the group and holds a pipe
    finally:
        _remove(folder)
    records, exercise, done, problem = _verdicts(list(frames.frames), cases, exercise)
    if frames.problem or problem:
        problem = frames.problem or problem
    elif timed_out:
        problem = (f"stopped after {timeout:g} s, the time limit (--timeout): an endless loop, or far too slow; "
                   "the checks after the last one shown were not run")
    elif child.returncode < 0:
        problem = f"the grading process was killed by signal {_signal_name(-child.returncode)} (a crash)"
    elif child.returncode != 0 or not done:
        problem = (f"the file ended the grading process (exit status {child.returncode}) before its checks "
                   "finished: a submission must not call exit() or os._exit()")
    elif not records:
        problem = "no check ran"
    if problem:
        last_line = output.text().strip().rsplit("\n", 1)[-1][:200]
        if last_line and not timed_out:  # a crash's own words, say
            problem += f"; the last line it printed: {last_line}"
        records.append(Record(exercise, FILE_CHECK, "", "error", message=printable(problem)))
    return Graded(submission.path, submission.name, exercise, records, output.text())


def _payload(submission: Submission, cases: dict[str, list]) -> bytes:
    arrays = {"source": np.frombuffer(submission.source, dtype=np.uint8), "path": np.array(submission.path)}
    for exercise, its_cases in cases.items():
        for index, case in enumerate(its_cases):
            arrays.update({f"{exercise}/{index}/{name}": value for name, value in case.inputs.items()})
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _verdicts(frames: list, cases: dict[str, list], exercise: str) -> tuple[list[Record], str, bool, str | None]:
    """(records, the exercise, whether the child said it finished, a problem or None) from the child's frames,
    judged against the reference."""
    done, results, failed_early = False, {}, None
    for frame in frames:
        if frame is None:
            return [], exercise, False, "sent something that is not a frame of arrays (the grader reads nothing else)"
        if "exercise" in frame and exercise and str(frame["exercise"]) != exercise:
            return [], exercise, done, (f"EXERCISE is {printable(str(frame['exercise']))[:40]!r} when the file runs, "
                                        f"but its top level assigns {exercise!r}: it is graded on that one")
        if "exercise" in frame and str(frame["exercise"]) in cases:
            exercise = str(frame["exercise"])
        elif "case" in frame and frame["case"].shape == () and frame["case"].dtype.kind in "iu":
            results.setdefault(int(frame["case"]), frame)  # the first word on a case counts
        elif "done" in frame:
            done = True
        elif "status" in frame and failed_early is None:  # the file failed before its checks: at import, say
            failed_early = Record(exercise, FILE_CHECK, "", "error", message=student_message(frame))
    if failed_early is not None:
        return [failed_early], exercise, done, None
    records = []
    for index, case in enumerate(cases.get(exercise, [])):
        if index in results:
            try:
                records += grade_case(exercise, case, results[index])
            except Exception as error:  # noqa: BLE001  what came back is odd in a way not foreseen: this file only
                records.append(Record(exercise, case.name, "", "error",
                                      message=printable(f"the grader could not judge what came back: {error}")))
        elif done:  # the child said it finished without this case: a forged frame, say
            records.append(Record(exercise, case.name, "", "error", message="no result came back for this check"))
    return records, exercise, done, None


def _send(pipe, payload: bytes) -> None:
    try:
        pipe.write(payload)
        pipe.close()
    except OSError:  # the child ended, or closed its standard input, without reading it all
        pass


class _FrameReader(threading.Thread):
    """Reads the child's frames (an 8-byte length, then an .npz), at most RESULTS_LIMIT bytes in all; a child
    that sends more is stopped at once."""

    def __init__(self, child: subprocess.Popen):
        super().__init__(daemon=True)
        self.child, self.pipe, self.frames, self.problem, self.read = child, child.stdout, [], "", 0

    def run(self) -> None:
        try:
            while header := self._exactly(8):
                size = int.from_bytes(header, "big")
                if size > RESULTS_LIMIT - self.read:
                    self.problem = f"sent more than {RESULTS_LIMIT:,} bytes of results: the rest was not read"
                    _kill_group(self.child)
                    return
                payload = self._exactly(size)
                self.frames.append(_load_frame(payload) if len(payload) == size else None)
        finally:
            self.pipe.close()

    def _exactly(self, size: int) -> bytes:
        data = bytearray()
        while len(data) < size and (chunk := os.read(self.pipe.fileno(), min(size - len(data), 1 << 16))):
            data += chunk
        self.read += len(data)
        return bytes(data)


def _load_frame(payload: bytes) -> dict | None:
    """The arrays of one frame, or None if it is not an .npz of plain arrays whose sizes match their headers."""
    try:
        arrays = {}
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            for info in archive.infolist():
                if info.file_size > len(payload) or not info.filename.endswith(".npy"):
                    return None  # declares more than was sent: compressed, and maybe a bomb
                data = archive.open(info).read(info.file_size + 1)
                stream = io.BytesIO(data)
                version = np.lib.format.read_magic(stream)
                shape, _, dtype = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0)(stream)
                if dtype.hasobject or dtype.kind not in "biufU" or math.prod(shape) * dtype.itemsize > len(data):
                    return None
                stream.seek(0)
                arrays[info.filename[:-4]] = np.lib.format.read_array(stream, allow_pickle=False)
        return arrays
    except Exception:  # noqa: BLE001  whatever the bytes are, they are not results
        return None


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _kill_group(child: subprocess.Popen) -> None:
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # already gone


def _remove(folder: str) -> None:
    """Remove the child's working folder (its processes are gone), also where the student's code took the
    permissions off a part of it; links are removed, never followed."""
    for parent, subfolders, _ in os.walk(folder):  # top down: each is opened up before the walk enters it
        for name in subfolders:
            path = os.path.join(parent, name)
            if not os.path.islink(path):
                os.chmod(path, 0o700)
    shutil.rmtree(folder, ignore_errors=True)


class _OutputKeeper(threading.Thread):
    """Reads a pipe to its end, keeping its first and last OUTPUT_KEPT bytes."""

    def __init__(self, pipe):
        super().__init__(daemon=True)
        self.pipe, self.head, self.tail, self.total = pipe, b"", b"", 0

    def run(self) -> None:
        while chunk := os.read(self.pipe.fileno(), 1 << 16):
            self.total += len(chunk)
            if len(self.head) < OUTPUT_KEPT:
                room = OUTPUT_KEPT - len(self.head)
                self.head, chunk = self.head + chunk[:room], chunk[room:]
            self.tail = (self.tail + chunk)[-OUTPUT_KEPT:]
        self.pipe.close()

    def text(self) -> str:
        """What the file printed, without terminal escape codes or other control characters."""
        left_out = self.total - len(self.head) - len(self.tail)
        middle = f"\n[... {left_out:,} bytes left out ...]\n" if left_out else ""
        return printable((self.head + middle.encode() + self.tail).decode(errors="replace"))
