"""Helpers of the team-scale tests (test_team.py, test_slurm.py): the stack started once per test session
(PostgreSQL + an MLflow server on it, then a two-node Ray cluster and a SLURM node when a test asks), the CLI
run against it, and reads through the server.  Every server listens on 127.0.0.1 and is stopped by pid."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scale"))

from faultkit import expected_steps, output, wait_for  # noqa: E402,F401  (the fault tests' helpers, re-exported)
from team import Team  # noqa: E402

LEASE_TTL_S = 20  # short, so that a dead holder's lease expires in seconds; longer than a CLI's start-up
# (also when `make test` runs the rest of the tests beside these)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def missing() -> str:
    """Why the stack cannot start here ('' when it can)."""
    if not list(Path("/usr/lib/postgresql").glob("*/bin/postgres")):
        return "PostgreSQL is not installed (apt-get install postgresql; .ci/run does it)"
    for mod in ("psycopg", "ray", "submitit"):
        try:
            __import__(mod)
        except ImportError:
            return f"{mod} is not installed (make install-scale)"
    return ""


def start_team() -> Team:
    folder = Path(tempfile.mkdtemp(prefix="harness-team-", dir="/tmp"))
    team = Team(folder, pg_port=free_port(), mlflow_port=free_port(), ray_port=free_port())
    t0 = time.monotonic()
    team.up(ray=False)
    team.started_s = time.monotonic() - t0
    print(f"\n[team] PostgreSQL + MLflow server up in {team.started_s:.1f} s ({folder})", file=sys.stderr)
    return team


def stop_team(team: Team) -> None:
    team.down()
    shutil.rmtree(team.dir, ignore_errors=True)


def env(team: Team, **extra: str) -> dict[str, str]:
    """A client's environment: the team's database and credentials file, a short lease."""
    stack = {k: v for k, v in team.env().items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")}  # tests name both
    out = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_DISABLE_TELEMETRY": "true", "HARNESS_LEASE_TTL_S": str(LEASE_TTL_S), **stack}
    out.pop("RAY_ADDRESS", None)
    out.pop("MLFLOW_TRACKING_URI", None)
    return {**out, **extra}


def suite_file(folder: Path, name: str, diff: dict, base: str = "smoke") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"include": str(ROOT / "suites" / f"{base}.yaml"), "name": name, **diff}))
    return path


def argv(team: Team, cwd: Path, command: str, *args: str) -> list[str]:
    extra = ["--reports-dir", str(cwd / "reports")] if command in ("run", "tune", "report") else []
    return [sys.executable, "-m", "harness.cli", command, *args, "--tracking-uri", team.tracking_uri, *extra]


def run(team: Team, cwd: Path, command: str, *args: str, timeout: float = 240, **extra_env: str) -> subprocess.CompletedProcess:
    return subprocess.run(argv(team, cwd, command, *args), cwd=cwd, env=env(team, **extra_env), capture_output=True,
                          text=True, timeout=timeout)


def start(team: Team, cwd: Path, command: str, *args: str, **extra_env: str) -> subprocess.Popen:
    """The CLI in the background, its output in cwd/<command>-<n>.log (`output(proc)`)."""
    log = open(cwd / f"{command}-{len(list(cwd.glob(f'{command}-*.log')))}.log", "w")
    proc = subprocess.Popen(argv(team, cwd, command, *args), cwd=cwd, env=env(team, **extra_env), stdout=log,
                            stderr=subprocess.STDOUT)
    proc.log_path = Path(log.name)
    log.close()
    return proc


def tracker(team: Team):
    from harness.track import Tracker

    return Tracker(team.tracking_uri)


def runs_of(team: Team, suite: str) -> tuple[list, list]:
    """(child runs with a run_id, other runs) of a suite's experiment, read through the server."""
    t = tracker(team)
    exp = t.client.get_experiment_by_name(suite)
    if exp is None:
        return [], []
    runs = t.client.search_runs([exp.experiment_id], max_results=1000)
    return [r for r in runs if "run_id" in r.data.tags], [r for r in runs if "run_id" not in r.data.tags]


def finished_once_each(team: Team, suite: str, n: int) -> dict[str, object]:
    children, others = runs_of(team, suite)
    done = [r for r in children if r.info.status == "FINISHED" and r.data.tags.get("harness.kind") != "trial"]
    ids = [r.data.tags["run_id"] for r in done]
    assert len(ids) == len(set(ids)) == n, ids
    assert not [r for r in children + others if r.info.status == "RUNNING"], "a run left RUNNING"
    return {r.data.tags["run_id"]: r for r in done}


def assert_exact_steps(team: Team, run, steps: int, log_every: int, eval_every: int) -> int:
    """Every metric of `run` has exactly its expected steps, once each; returns the point count."""
    client = tracker(team).client
    points = 0
    for key in run.data.metrics:
        got = sorted(m.step for m in client.get_metric_history(run.info.run_id, key))
        assert got == expected_steps(key, steps, log_every, eval_every), (run.info.run_name, key, got)
        points += len(got)
    return points


def leases(team: Team) -> dict[str, str]:
    """suite -> holder of the leases held in the team database now."""
    from sqlalchemy import create_engine, text

    engine = create_engine(team.database_url)
    try:
        with engine.connect() as c:
            return dict(c.execute(text("SELECT suite, holder FROM harness_suite_leases")).all())
    except Exception:  # the table does not exist yet
        return {}
    finally:
        engine.dispose()


needs_team = pytest.mark.skipif(bool(missing()), reason=missing() or "ok")
