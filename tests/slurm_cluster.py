"""A private single-node Slurm cluster for the tests: munged, slurmctld and slurmd in a temporary folder.

Everything lives in one temporary folder: the munge key and socket, a generated slurm.conf, the
daemons' state, spool and logs. The daemons listen on free ports of their own and the client
commands find them through $SLURM_CONF, so a real cluster on the machine is not disturbed. The node
has the machine's CPUs; processes are tracked by /proc (proctrack/linuxproc), not cgroups.

It needs the Debian packages slurm-wlm and munge (.ci/run installs them) and root: slurmd starts
each job as its user. Otherwise `missing()` says why, in one line, and the tests skip.
"""
from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scancel", "scontrol", "sinfo")
NODE = "minibn-node"


SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin", "/sbin", "/bin"])  # daemons: sbin


def missing() -> str | None:
    """Why a private cluster cannot start here, or None."""
    absent = [name for name in DAEMONS + CLIENTS if shutil.which(name, path=SEARCH_PATH) is None]
    if absent:
        return (f"Slurm is not installed ({', '.join(absent)} missing): "
                f"apt-get install slurm-wlm munge, as .ci/run does")
    if os.geteuid() != 0:
        return "starting slurmd needs root (CI runs as root)"
    try:
        pwd.getpwnam("munge")
    except KeyError:
        return "the munge user does not exist (install the Debian package munge)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def slurm_conf(folder: Path, munge_socket: Path, cpus: int, memory_mb: int) -> str:
    return f"""\
ClusterName=minibn-test
SlurmctldHost=localhost
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/slurmctld.log
SlurmdLogFile={folder}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
MpiDefault=none
ReturnToService=2
KillWait=5
MinJobAge=60
SchedulerParameters=sched_interval=1
NodeName={NODE} NodeHostname=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName=debug Nodes={NODE} Default=YES MaxTime=INFINITE State=UP
"""


class PrivateSlurm:
    """Start with `start()`, stop with `stop()`; `env` holds what the client commands need."""

    def __init__(self):
        self.folder = Path(tempfile.mkdtemp(prefix="minibn-slurm-"))
        self.folder.chmod(0o755)  # munged runs as the munge user and must reach its own subfolder
        self.conf = self.folder / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf), "PATH": SEARCH_PATH}
        self.processes: list[subprocess.Popen] = []

    def start(self) -> "PrivateSlurm":
        munge_socket = self.start_munge()
        cpus = len(os.sched_getaffinity(0))
        memory_mb = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2**20 // 2
        for sub in ("state", "spool"):
            (self.folder / sub).mkdir()
        self.conf.write_text(slurm_conf(self.folder, munge_socket, cpus, memory_mb))
        self.spawn(["slurmctld", "-D", "-f", str(self.conf)])
        self.wait_for(lambda: self.run("scontrol", "ping").returncode == 0, "slurmctld to answer")
        self.spawn(["slurmd", "-D", "-f", str(self.conf), "-N", NODE])
        self.wait_for(lambda: self.run("sinfo", "-h", "-o", "%T").stdout.strip() == "idle", "the node to be idle")
        return self

    def start_munge(self) -> Path:
        """munged as the munge user, with a fresh key, its socket in our folder."""
        munge = self.folder / "munge"
        munge.mkdir()
        munge.chmod(0o755)  # munged wants its socket folder reachable by all (the clients)
        key = munge / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        user = pwd.getpwnam("munge")
        for path in (munge, key):
            os.chown(path, user.pw_uid, user.pw_gid)
        socket_path = munge / "munge.socket"
        self.spawn(["munged", "-F", f"--socket={socket_path}", f"--key-file={key}",
                    f"--pid-file={munge}/munged.pid", f"--log-file={munge}/munged.log",
                    f"--seed-file={munge}/munged.seed"], user="munge")
        self.wait_for(socket_path.exists, "munged's socket")
        return socket_path

    def spawn(self, command: list[str], **kwargs) -> None:
        log = open(self.folder / f"{command[0]}.out", "w")
        self.processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                               **kwargs))

    def run(self, *command: str) -> subprocess.CompletedProcess:
        return subprocess.run(command, capture_output=True, text=True, env=self.env, timeout=30)

    def wait_for(self, condition, what: str, timeout: float = 30) -> None:
        deadline = time.time() + timeout
        while not condition():
            dead = [p.args[0] for p in self.processes if p.poll() is not None]
            if dead or time.time() > deadline:
                raise RuntimeError(f"waiting for {what}: {', '.join(dead) + ' exited' if dead else 'timed out'}; "
                                   f"logs in {self.folder}\n{self.logs()}")
            time.sleep(0.1)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-1500:]}" for p in sorted(self.folder.glob("*.out"))
                         if p.stat().st_size)

    def stop(self) -> None:
        """Cancel every job, stop the daemons (newest first) and remove the folder."""
        if any(p.poll() is None for p in self.processes):
            self.run("scancel", "--full", "--user", "root")
        for process in reversed(self.processes):
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)
