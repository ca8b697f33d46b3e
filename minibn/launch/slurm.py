"""The Slurm launcher: the runs of a sweep as one Slurm job array, submitted through submitit.

Each array task trains one run (minibn.launch.task.slurm_task) and writes its run folder. The sweep
folder keeps slurm/jobs.json (run -> the Slurm job of its latest submission) and submitit's files:
the submission script, each task's pickled run and result, and its log (slurm/<job>_0_log.out).

A run's state comes from its folder and from the queue (squeue; it needs no accounting database):
finished (summary.json), pending or running (its job is queued), failed (its job left the queue
before the run finished: an error, a kill, the time limit), not started (never submitted). Running
the sweep again submits only the runs that are not finished, pending or running, and each resumes
from its checkpoint. Before the time limit Slurm sends SIGUSR1 (sbatch --signal), on which training
saves a checkpoint and stops, as it does on Ctrl-C and on SIGTERM (scancel, preemption).
"""
from __future__ import annotations

import getpass
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from minibn.launch.runs import RunSpec, finished, local_state
from minibn.run_files import read_small_json, write_json

MISSING = 'the Slurm launcher needs submitit: pip install "minibn[slurm]"'
WARNING_SECONDS = 120  # SIGUSR1 this long before the time limit: time to save a checkpoint and stop
QUEUED = {"PENDING": "pending", "REQUEUED": "pending", "REQUEUE_HOLD": "pending", "REQUEUE_FED": "pending",
          "CONFIGURING": "running", "RUNNING": "running", "COMPLETING": "running", "SUSPENDED": "running",
          "RESIZING": "running", "STAGE_OUT": "running", "SIGNALING": "running", "STOPPED": "running"}


class SlurmError(Exception):
    """Slurm or submitit is missing, or a Slurm command failed; the message says which."""


@dataclass
class SlurmOptions:
    time_minutes: int
    partition: str | None = None
    gpus_per_task: int | None = None
    cpus_per_task: int | None = None
    mem: str | None = None  # Slurm's format: 16G, 4000M
    max_running: int | None = None  # at most this many array tasks at once (sbatch --array=...%N)
    sbatch: dict = field(default_factory=dict)  # any other sbatch option: {"account": "lab", "exclusive": True}


def parse_time(text: str) -> int:
    """Slurm's time formats (minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS) as whole minutes, rounded up."""
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a Slurm time: use minutes, HH:MM:SS or D-HH:MM:SS")
    days, first, second, third = (int(g) if g else None for g in match.groups())
    if days is not None:  # D-HH[:MM[:SS]]
        seconds = ((days * 24 + first) * 60 + (second or 0)) * 60 + (third or 0)
    elif third is not None:  # HH:MM:SS
        seconds = (first * 60 + second) * 60 + third
    elif second is not None:  # MM:SS
        seconds = first * 60 + second
    else:  # minutes
        seconds = first * 60
    if seconds <= 0:
        raise ValueError(f"{text!r}: the time limit must be positive")
    return -(-seconds // 60)


def parse_sbatch(pairs: tuple[str, ...]) -> dict:
    """--sbatch account=lab --sbatch exclusive -> {"account": "lab", "exclusive": True}."""
    options = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        key = key.strip().lstrip("-")
        if not key:
            raise ValueError(f"--sbatch {pair!r}: give KEY=VALUE (e.g. account=mylab) or a flag (e.g. exclusive)")
        options[key] = value if value else True
    return options


def check_slurm() -> None:
    for command in ("sbatch", "squeue", "srun"):
        if shutil.which(command) is None:
            raise SlurmError(f"{command} not found: run the Slurm launcher on a machine of the cluster "
                             f"(a login node)")


def jobs_file(root: Path) -> Path:
    return root / "slurm" / "jobs.json"


def read_jobs(root: Path) -> dict[str, str]:
    """Run name -> the Slurm job id of its latest submission (an array task is 1234_5)."""
    path = jobs_file(root)
    if not path.exists():
        return {}
    try:
        jobs = read_small_json(path)
    except (OSError, ValueError) as error:  # a stray or damaged file: not a traceback, and no job forgotten silently
        jobs = error
    if not isinstance(jobs, dict) or not all(isinstance(v, str) for v in jobs.values()):
        why = jobs if isinstance(jobs, Exception) else "not a map of run to job id"
        raise SlurmError(f"{path} is not the list of Slurm jobs this sweep wrote ({why}); check with squeue that "
                         f"none of its runs is still queued, delete it, and run the same sweep again")
    return jobs


def queue() -> dict[str, str]:
    """This user's queued jobs, one line per array task: job id -> pending or running."""
    check_slurm()
    result = subprocess.run(["squeue", "--noheader", "--array", "--user", getpass.getuser(), "--format", "%i|%T"],
                            capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise SlurmError(f"squeue failed: {result.stderr.strip() or result.stdout.strip()}")
    by_job = {}
    for line in result.stdout.splitlines():
        job, _, state = line.strip().partition("|")
        if job:
            by_job[job] = QUEUED.get(state, "running")
    return by_job


def queued_runs(specs: list[RunSpec], root: Path) -> set[str]:
    """The runs whose Slurm job is pending or running, which nothing else may train now: none when this sweep
    never used Slurm, or when this machine has no Slurm (a copy of the sweep folder)."""
    jobs = read_jobs(root)
    if not jobs or shutil.which("squeue") is None:
        return set()
    queued = queue()
    return {spec.name for spec in specs if jobs.get(spec.name) in queued}


def failure(root: Path, job: str) -> str:
    """Why a run's job ended unfinished: the last line of its error as submitit kept it, else where its log is."""
    try:
        from submitit.core.utils import JobPaths, pickle_load
    except ImportError:
        return f"see the logs in {root / 'slurm'}"
    paths = JobPaths(root / "slurm", job_id=job, task_id=0)
    if paths.result_pickle.exists():
        outcome, detail = pickle_load(paths.result_pickle)
        if outcome == "error":
            lines = [line for line in str(detail).splitlines() if line.strip()] or ["failed"]
            # "minibn.train.Interrupted: interrupted in epoch 2 at step 3; checkpoint saved to ...; continue with
            # --resume": the class and what the state column says already go
            return re.sub(r"^[\w.]+: |; checkpoint saved to .*", "", lines[-1].strip())
    return f"ended without a result (killed?); log: {paths.stdout}"


def states(specs: list[RunSpec], root: Path) -> list[tuple[RunSpec, str, str, str]]:
    """(run, state, job, note) for every run: finished, pending, running, failed, unfinished or not started."""
    jobs = read_jobs(root)
    queued = queue() if jobs else {}
    rows = []
    for spec in specs:
        job = jobs.get(spec.name, "")
        if finished(spec):
            rows.append((spec, "finished", job, ""))
        elif job in queued:
            rows.append((spec, queued[job], job, ""))
        elif job:
            resumes = "; the next sweep resumes it from its checkpoint" \
                if (Path(spec.folder) / "checkpoint.npz").exists() else ""
            rows.append((spec, "failed", job, failure(root, job) + resumes))
        else:
            rows.append((spec, local_state(spec), "", ""))
    return rows


def submit(specs: list[RunSpec], options: SlurmOptions, root: Path) -> str:
    """Submit ``specs`` as one job array; record each run's job; the array's job id."""
    try:
        import submitit
    except ImportError:
        raise SlurmError(MISSING) from None
    check_slurm()
    executor = submitit.SlurmExecutor(folder=root / "slurm")
    named = {"partition": options.partition, "gpus_per_task": options.gpus_per_task,
             "cpus_per_task": options.cpus_per_task}
    executor.update_parameters(
        job_name=f"minibn-{root.name}", time=options.time_minutes, stderr_to_stdout=True,
        array_parallelism=options.max_running or len(specs),
        **{key: value for key, value in named.items() if value is not None},
        additional_parameters={"signal": f"USR1@{WARNING_SECONDS}", **({"mem": options.mem} if options.mem else {}),
                               **options.sbatch})
    from minibn.launch.task import slurm_task
    try:
        jobs = executor.map_array(slurm_task, specs)
    except Exception as error:  # submitit raises a bare Exception with sbatch's output when sbatch refuses
        message = " ".join(str(error).split())
        raise SlurmError(f"sbatch refused the job array: {message[-600:]}") from None
    write_json(jobs_file(root), {**read_jobs(root), **{spec.name: job.job_id for spec, job in zip(specs, jobs)}})
    return jobs[0].job_id.split("_")[0]
