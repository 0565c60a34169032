"""The team stack on one machine, as a team would run it on several: PostgreSQL (one database for MLflow,
one for Optuna and the harness's suite leases), an `mlflow server` on it that serves the artifacts, and a
two-node Ray cluster (a head and a second node, each its own `ray start` with one CPU).

    python scale/team.py up [--no-ray]     # start what is not running; prints the env file to source
    python scale/team.py down              # stop everything this stack started (by process group)
    python scale/team.py status
    make team-up / make team-down          # the same, with .venv's python

Everything lives in one folder outside the repository ($HARNESS_TEAM_DIR, default /var/tmp/harness-team):
    secrets/pgpass   the database password (libpq's passfile format, mode 0600; generated once)
    team.env         MLFLOW_TRACKING_URI, HARNESS_DATABASE_URL, PGPASSFILE, RAY_ADDRESS, RAY_AUTH_MODE (no password)
    pg/ mlflow/ ray-*/ logs/  the data and logs of each component; team.json the ports and pids
Clients find the password through PGPASSFILE (libpq reads it), so no URL, argv, log or tag ever holds it.
Ports: $HARNESS_TEAM_PG_PORT (55432), $HARNESS_TEAM_MLFLOW_PORT (55500), $HARNESS_TEAM_RAY_PORT (56379).
Every server listens on 127.0.0.1 only.  The tests drive the same class (stop / start single components)."""

from __future__ import annotations

import argparse
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROLE = "harness"
MLFLOW_DB, OPTUNA_DB = "harness_mlflow", "harness_optuna"
DEFAULT_DIR = Path(os.environ.get("HARNESS_TEAM_DIR", "/var/tmp/harness-team"))
QUIET_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1"}
RAY_ENV = {"RAY_AUTH_MODE": "disabled"}  # the cluster listens on 127.0.0.1 only; every node and driver must agree


def pg_bin(name: str) -> str:
    """A PostgreSQL server binary (Debian keeps them in /usr/lib/postgresql/<version>/bin)."""
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parts[-3]))
    if found:
        return str(found[-1])
    if shutil.which(name):
        return name
    raise SystemExit(f"error: PostgreSQL's {name} not found: apt-get install postgresql (.ci/run does it)")


def wait_until(check, timeout_s: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-2000:] if log is not None and log.exists() else ""
    raise RuntimeError(f"{what} not ready after {timeout_s:.0f} s" + (f"; log {log}:\n{tail}" if tail else ""))


def group_alive(pgid: int) -> bool:
    """Whether a process of group `pgid` still runs (zombies waiting for their reaper do not count)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def stop_group(pid: int, grace_s: float = 15.0, sig: int = signal.SIGTERM) -> None:
    """`sig` to the process group led by `pid`, SIGKILL to what is left after `grace_s`; the leader is
    reaped if it is our child."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while group_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if group_alive(pid):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:  # not ours (started by another `team.py up`)
        pass


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


@dataclass
class Team:
    dir: Path = DEFAULT_DIR
    pg_port: int = int(os.environ.get("HARNESS_TEAM_PG_PORT", 55432))
    mlflow_port: int = int(os.environ.get("HARNESS_TEAM_MLFLOW_PORT", 55500))
    ray_port: int = int(os.environ.get("HARNESS_TEAM_RAY_PORT", 56379))
    pids: dict[str, int] = field(default_factory=dict)  # component -> process-group leader

    # ------------------------------------------------------------ where things are
    @property
    def pgpass(self) -> Path:
        return self.dir / "secrets" / "pgpass"

    @property
    def tracking_uri(self) -> str:
        return f"http://127.0.0.1:{self.mlflow_port}"

    @property
    def database_url(self) -> str:
        """The Optuna / lease database (no password: libpq reads PGPASSFILE)."""
        return f"postgresql://{ROLE}@127.0.0.1:{self.pg_port}/{OPTUNA_DB}"

    @property
    def ray_address(self) -> str:
        return f"127.0.0.1:{self.ray_port}"

    def env(self) -> dict[str, str]:
        """What a client of the stack needs in its environment."""
        return {"MLFLOW_TRACKING_URI": self.tracking_uri, "HARNESS_DATABASE_URL": self.database_url,
                "PGPASSFILE": str(self.pgpass), "RAY_ADDRESS": self.ray_address, **RAY_ENV}

    def _log(self, name: str) -> Path:
        (self.dir / "logs").mkdir(parents=True, exist_ok=True)
        return self.dir / "logs" / f"{name}.log"

    def save(self) -> None:
        state = {k: v for k, v in asdict(self).items() if k != "dir"}
        (self.dir / "team.json").write_text(json.dumps(state, indent=1))
        (self.dir / "team.env").write_text("".join(f"export {k}={v}\n" for k, v in self.env().items()))

    @classmethod
    def load(cls, folder: Path = DEFAULT_DIR) -> Team:
        state = folder / "team.json"
        return cls(folder, **json.loads(state.read_text())) if state.exists() else cls(folder)

    # ------------------------------------------------------------ PostgreSQL
    def _as_postgres(self, argv: list[str], **kw) -> subprocess.CompletedProcess:
        """Run a server binary as the `postgres` user when we are root (the server refuses root)."""
        if os.geteuid() == 0:
            argv = ["runuser", "-u", "postgres", "--", *argv]
        return subprocess.run(argv, check=True, capture_output=True, text=True, timeout=120, **kw)

    def _password(self) -> str:
        if not self.pgpass.exists():
            self.pgpass.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.pgpass, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:  # host:port:database:user:password
                f.write(f"127.0.0.1:*:*:{ROLE}:{secrets.token_urlsafe(24)}\n")
        return self.pgpass.read_text().strip().rsplit(":", 1)[1]

    def _pg_dirs(self) -> tuple[Path, Path]:
        data, sock = self.dir / "pg" / "data", self.dir / "pg" / "run"
        if os.geteuid() == 0:  # the postgres user must reach and own its folders
            os.chmod(self.dir, 0o711)
            (self.dir / "pg").mkdir(exist_ok=True)
            for d in (data, sock):
                d.mkdir(parents=True, exist_ok=True, mode=0o700)
            pw = pwd.getpwnam("postgres")
            for d in (self.dir / "pg", data, sock):
                os.chown(d, pw.pw_uid, pw.pw_gid)
        else:
            for d in (data, sock):
                d.mkdir(parents=True, exist_ok=True, mode=0o700)
        return data, sock

    def pg_running(self) -> bool:
        return subprocess.run([pg_bin("pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.pg_port)]).returncode == 0

    def _psql(self, sock: Path, sql: str, db: str = "postgres") -> str:
        out = self._as_postgres(["psql", "-X", "-q", "-t", "-A", "-h", str(sock), "-p", str(self.pg_port), "-U", "postgres",
                                 "-d", db, "-v", "ON_ERROR_STOP=1", "-f", "-"], input=sql)  # stdin: never in an argv
        return out.stdout.strip()

    def start_postgres(self) -> None:
        if self.pg_running():
            return
        data, sock = self._pg_dirs()
        password = self._password()
        if not (data / "PG_VERSION").exists():
            self._as_postgres([pg_bin("initdb"), "-D", str(data), "-U", "postgres", "--auth-local=trust",
                               "--auth-host=scram-sha-256", "-E", "UTF8", "--no-instructions"])
        log = self._log("postgres")
        if os.geteuid() == 0:
            log.touch()
            shutil.chown(log, "postgres")
        opts = f"-p {self.pg_port} -k {sock} -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off"
        self._as_postgres([pg_bin("pg_ctl"), "-D", str(data), "-l", str(log), "-o", opts, "-w", "-t", "60", "start"])
        if not self._psql(sock, f"SELECT 1 FROM pg_roles WHERE rolname = '{ROLE}'"):
            self._psql(sock, f"CREATE ROLE {ROLE} LOGIN PASSWORD '{password}'")
        for db in (MLFLOW_DB, OPTUNA_DB):
            if not self._psql(sock, f"SELECT 1 FROM pg_database WHERE datname = '{db}'"):
                self._psql(sock, f"CREATE DATABASE {db} OWNER {ROLE}")

    def stop_postgres(self, mode: str = "fast") -> None:
        data = self.dir / "pg" / "data"
        if (data / "postmaster.pid").exists():
            self._as_postgres([pg_bin("pg_ctl"), "-D", str(data), "-m", mode, "-w", "-t", "60", "stop"])

    # ------------------------------------------------------------ MLflow server
    def mlflow_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.tracking_uri}/health", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def start_mlflow(self, timeout_s: float = 90.0) -> None:
        if alive(self.pids.get("mlflow")) and self.mlflow_ready():
            return
        (self.dir / "mlflow" / "artifacts").mkdir(parents=True, exist_ok=True)
        log = self._log("mlflow")
        env = {**os.environ, **QUIET_ENV, "PGPASSFILE": str(self.pgpass), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        argv = [str(Path(sys.executable).with_name("mlflow")), "server", "--host", "127.0.0.1", "--port", str(self.mlflow_port),
                "--workers", "1", "--backend-store-uri", f"postgresql://{ROLE}@127.0.0.1:{self.pg_port}/{MLFLOW_DB}",
                "--artifacts-destination", str(self.dir / "mlflow" / "artifacts")]
        with open(log, "ab") as out:
            proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, cwd=self.dir / "mlflow")
        self.pids["mlflow"] = proc.pid
        self.save()
        wait_until(lambda: proc.poll() is None and self.mlflow_ready() or proc.poll() is not None, timeout_s, "mlflow server", log)
        if proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited {proc.returncode}; log {log}:\n{log.read_text(errors='replace')[-2000:]}")

    def stop_mlflow(self) -> None:
        pid = self.pids.pop("mlflow", None)
        if pid:
            stop_group(pid)
        self.save()

    # ------------------------------------------------------------ Ray: a head and a second node, one CPU each
    def start_ray(self, nodes: int = 2, timeout_s: float = 90.0) -> None:
        """The head (`nodes` 1), or the head and the second node (2); nodes already running are kept."""
        ray = str(Path(sys.executable).with_name("ray"))
        started = {"ray-head": ["--head", f"--port={self.ray_port}", "--include-dashboard=false"],
                   "ray-node": [f"--address={self.ray_address}"]}
        for name, extra in list(started.items())[:nodes]:
            if alive(self.pids.get(name)):
                continue
            tmp = self.dir / name
            tmp.mkdir(parents=True, exist_ok=True)
            argv = [ray, "start", "--block", "--node-ip-address=127.0.0.1", "--num-cpus=1", "--num-gpus=0",
                    f"--resources={json.dumps({name.replace('-', '_'): 1})}", "--object-store-memory=100000000",
                    "--disable-usage-stats", *extra]
            if name == "ray-head":
                argv.append(f"--temp-dir={tmp}")
            with open(self._log(name), "ab") as out:
                proc = subprocess.Popen(argv, env={**os.environ, **QUIET_ENV, **RAY_ENV}, stdout=out,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
            self.pids[name] = proc.pid
            self.save()
            if name == "ray-head":  # the second node needs the head's GCS
                wait_until(lambda: _accepts(self.ray_port), timeout_s, name, self._log(name))
        self.wait_ray_nodes(nodes, timeout_s)

    def wait_ray_nodes(self, n: int, timeout_s: float) -> None:
        """Wait until the cluster has `n` alive nodes (one driver polls; connecting costs seconds)."""
        code = ("import ray,sys,time; ray.init(address=sys.argv[1], logging_level='ERROR', log_to_driver=False)\n"
                "end = time.monotonic() + float(sys.argv[3])\n"
                "while sum(x['Alive'] for x in ray.nodes()) < int(sys.argv[2]) and time.monotonic() < end: time.sleep(0.3)\n"
                "sys.exit(0 if sum(x['Alive'] for x in ray.nodes()) >= int(sys.argv[2]) else 1)")
        out = subprocess.run([sys.executable, "-c", code, self.ray_address, str(n), str(timeout_s)], capture_output=True,
                             text=True, timeout=timeout_s + 30, env={**os.environ, **QUIET_ENV, **RAY_ENV})
        if out.returncode != 0:
            raise RuntimeError(f"Ray cluster at {self.ray_address} has fewer than {n} nodes: {out.stderr[-2000:]}")

    def stop_ray(self) -> None:
        for name in ("ray-node", "ray-head"):
            pid = self.pids.pop(name, None)
            if pid:  # `ray start --block` stops its processes on SIGINT
                stop_group(pid, grace_s=20, sig=signal.SIGINT)
        self.save()

    # ------------------------------------------------------------ all of it
    def up(self, ray: bool = True) -> float:
        t0 = time.monotonic()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.save()
        self.start_postgres()
        self.start_mlflow()
        if ray:
            self.start_ray()
        self.save()
        return time.monotonic() - t0

    def down(self) -> None:
        self.stop_ray()
        self.stop_mlflow()
        self.stop_postgres()

    def status(self) -> dict[str, bool]:
        return {"postgres": self.pg_running(), "mlflow": self.mlflow_ready(),
                "ray": any(alive(self.pids.get(n)) for n in ("ray-head", "ray-node"))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="team", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["up", "down", "status"])
    ap.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--no-ray", action="store_true", help="up: PostgreSQL and MLflow only")
    args = ap.parse_args(argv)
    team = Team.load(args.dir)
    if args.command == "up":
        seconds = team.up(ray=not args.no_ray)
        print(f"team stack up in {seconds:.1f} s: MLflow {team.tracking_uri}, PostgreSQL 127.0.0.1:{team.pg_port}"
              + ("" if args.no_ray else f", Ray {team.ray_address} (2 nodes)"))
        print(f"source {team.dir / 'team.env'}   # then: harness run SUITE (the server store, Optuna and leases in PostgreSQL)")
    elif args.command == "down":
        team.down()
        print("team stack stopped")
    else:
        for name, ok in team.status().items():
            print(f"{name:<9} {'up' if ok else 'down'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
