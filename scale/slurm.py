"""A single-node SLURM cluster on this machine (Debian's slurmctld + slurmd with munge), for the `slurm`
backend's tests and for trying it out:

    python scale/slurm.py up [--dir DIR] [--cpus N]   # munged, slurmctld, slurmd; prints `export SLURM_CONF=...`
    python scale/slurm.py down [--dir DIR]

Configured for a machine without systemd or cgroup delegation (a container): ProctrackType=proctrack/linuxproc
(jobs tracked through /proc), TaskPlugin=task/none, no accounting database (the harness reads job states
with squeue), munge with its own key and socket in DIR.  Daemons run as root (slurmd must); ports 16817/16818
unless $HARNESS_SLURM_PORT (slurmctld; slurmd uses the next one); everything on 127.0.0.1; KillWait 5 s.
One partition `debug` (default) holding this node."""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from team import alive, stop_group, wait_until

DEFAULT_DIR = Path(os.environ.get("HARNESS_SLURM_DIR", "/var/tmp/harness-slurm"))

CONF = """\
ClusterName=harness
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={port}
SlurmdPort={dport}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={dir}/munge/munge.socket
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
KillWait=5
MinJobAge=300
JobRequeue=1
StateSaveLocation={dir}/state
SlurmdSpoolDir={dir}/spool
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd.pid
SlurmctldLogFile={dir}/log/slurmctld.log
SlurmdLogFile={dir}/log/slurmd.log
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def have_slurm() -> str:
    """'' when slurmctld, slurmd, munged and the client commands are installed, else what is missing."""
    missing = [b for b in ("slurmctld", "slurmd", "munged", "sbatch", "squeue", "scancel", "scontrol") if shutil.which(b) is None
               and not Path(f"/usr/sbin/{b}").exists()]
    return ", ".join(missing)


def _bin(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


@dataclass
class Slurm:
    dir: Path = DEFAULT_DIR
    port: int = int(os.environ.get("HARNESS_SLURM_PORT", 16817))
    cpus: int = os.cpu_count() or 1

    @property
    def conf(self) -> Path:
        return self.dir / "slurm.conf"

    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.conf)}

    def _pid(self, name: str) -> int | None:
        f = self.dir / name
        try:
            return int(f.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def up(self, timeout_s: float = 60.0) -> float:
        t0 = time.monotonic()
        for d in ("munge", "state", "spool", "log"):
            (self.dir / d).mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir / "munge", 0o711)  # munged wants a socket dir others can traverse
        key = self.dir / "munge" / "munge.key"
        if not key.exists():
            fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(1024))
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1 << 20) // 2
        self.conf.write_text(CONF.format(host=socket.gethostname().split(".")[0], port=self.port, dport=self.port + 1,
                                         dir=self.dir, cpus=self.cpus, mem=mem))
        env = {**os.environ, **self.env()}
        if not alive(self._pid("munge/munged.pid")):
            subprocess.run([_bin("munged"), "--force", f"--socket={self.dir}/munge/munge.socket", f"--key-file={key}",
                            f"--log-file={self.dir}/log/munged.log", f"--pid-file={self.dir}/munge/munged.pid",
                            f"--seed-file={self.dir}/munge/seed"], check=True, timeout=30)
        if not alive(self._pid("slurmctld.pid")):
            subprocess.run([_bin("slurmctld"), "-i"], env=env, check=True, timeout=30)  # -i: ignore a stale state
        if not alive(self._pid("slurmd.pid")):
            subprocess.run([_bin("slurmd")], env=env, check=True, timeout=30)
        wait_until(lambda: self._idle(env), timeout_s, "slurm node idle", self.dir / "log" / "slurmd.log")
        return time.monotonic() - t0

    def _idle(self, env: dict[str, str]) -> bool:
        out = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True, timeout=10)
        return out.returncode == 0 and out.stdout.strip() in ("idle", "mixed", "allocated")

    def down(self) -> None:
        """Stop the daemons by pid (their pid files): slurmd, slurmctld, munged."""
        for name in ("slurmd.pid", "slurmctld.pid", "munge/munged.pid"):
            pid = self._pid(name)
            if alive(pid):
                stop_group_or_pid(pid)


def stop_group_or_pid(pid: int) -> None:
    """Daemons lead their own session (they daemonized): stop the group, else the process."""
    try:
        if os.getpgid(pid) == pid:
            stop_group(pid, grace_s=10)
            return
    except ProcessLookupError:
        return
    os.kill(pid, 15)
    wait_until(lambda: not alive(pid), 10, f"pid {pid} to exit")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="slurm", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["up", "down"])
    ap.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--cpus", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args(argv)
    missing = have_slurm()
    if missing:
        print(f"error: not installed: {missing} (apt-get install slurmctld slurmd slurm-client munge)", file=sys.stderr)
        return 2
    cluster = Slurm(args.dir, cpus=args.cpus)
    if args.command == "up":
        seconds = cluster.up()
        print(f"slurm up in {seconds:.1f} s (1 node, {cluster.cpus} CPUs, partition debug)\nexport SLURM_CONF={cluster.conf}")
    else:
        cluster.down()
        print("slurm stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
