"""Team scale (`make bench`): the smoke suite (4 runs x 150 steps, 2 local workers) on the team's MLflow
server (on PostgreSQL, artifacts served) against a sqlite file, median of 3 each, every variant a fresh
process (start-up included, `--no-report`), a fresh sqlite file or a fresh experiment on the server; then
runs per minute of 8 runs x 150 steps on Ray: the head node alone (1 CPU, 1 worker) and with the second
node (2 CPUs on 2 nodes, 2 workers), one run each.  The stack is started for the benchmark (its start-up
time is printed) and stopped after it.  No timed assertions."""

import os
import sys
import time
import uuid
from pathlib import Path

import pytest
from timing import median_wall, show, timed

pytestmark = pytest.mark.bench

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "harness"))
import teamkit  # noqa: E402

SUITE = str(ROOT / "suites" / "smoke.yaml")
STEPS = "defaults.training.steps=150"


def smoke(uri: str, *extra: str):
    return lambda d: [sys.executable, "-m", "harness.cli", "run", SUITE, STEPS, *extra, "--workers", "2", "--no-report",
                      "--tracking-uri", uri.format(d=d), "--reports-dir", str(d / "reports")]


def test_server_store_vs_sqlite_and_two_ray_nodes_vs_one(tmp_path):
    why = teamkit.missing()
    if why:
        pytest.skip(why)
    team = teamkit.start_team()
    os.environ.update({k: v for k, v in teamkit.env(team).items() if k in ("HARNESS_DATABASE_URL", "PGPASSFILE")})
    try:
        sqlite = median_wall(smoke("sqlite:///{d}/mlflow.db"), tmp_path / "sqlite")
        server = median_wall(lambda d: smoke(team.tracking_uri, f"name=bsmoke_{uuid.uuid4().hex[:8]}")(d), tmp_path / "server")
        print(f"\n[bench] team stack (PostgreSQL + MLflow server) up in {team.started_s:.1f} s")
        print(f"[bench] smoke 4 runs x 150 steps, 2 workers: sqlite {show(sqlite)}, server {show(server)}; "
              f"server / sqlite = {server[0] / sqlite[0]:.2f}")
        rates = {}
        for nodes in (1, 2):
            t0 = time.monotonic()
            team.start_ray(nodes=nodes)
            up = time.monotonic() - t0
            name = f"bray{nodes}_{uuid.uuid4().hex[:8]}"
            argv = [sys.executable, "-m", "harness.cli", "run", SUITE, STEPS, "seeds=[0,1,2,3]", f"name={name}", "--backend", "ray",
                    f"scheduler.ray_address={team.ray_address}", "--workers", str(nodes), "--no-report",
                    "--tracking-uri", team.tracking_uri, "--reports-dir", str(tmp_path / "reports")]
            seconds, _ = timed(argv, tmp_path)
            rates[nodes] = 8 / seconds * 60
            print(f"[bench] ray {nodes} node(s) (started in {up:.1f} s): 8 runs in {seconds:.1f} s = {rates[nodes]:.1f} runs/min")
        print(f"[bench] two Ray nodes / one = {rates[2] / rates[1]:.2f} (runs per minute)")
    finally:
        team.stop_ray()
        teamkit.stop_team(team)
