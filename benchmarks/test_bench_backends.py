"""Backends (`make bench`): the same small suite (smoke: 4 runs x 150 steps) through the local
backend with 1 and 2 workers, through Ray (a local cluster of 2 CPUs) and, as the reference, as a
bare loop (benchmarks/bare_loop.py: build + fit in one process, no MLflow, no subprocesses).
Every variant is a fresh process on a fresh store, timed from the outside (start-up included);
`--no-report` leaves the report out.  Prints wall times and ratios; no timed assertions."""

import importlib.util
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.track import Tracker

pytestmark = pytest.mark.bench

ROOT = Path(__file__).resolve().parents[1]
SUITE = str(ROOT / "suites" / "smoke.yaml")
OVERRIDES = ["defaults.training.steps=150"]
N_RUNS = 4


def _timed(argv: list[str], cwd: Path) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr[-3000:]
    return seconds


def _harness(tmp: Path, name: str, *options: str) -> float:
    store = tmp / name
    store.mkdir()
    argv = [sys.executable, "-m", "harness.cli", "run", SUITE, *OVERRIDES, *options, "--no-report",
            "--tracking-uri", f"sqlite:///{store}/mlflow.db", "--reports-dir", str(store / "reports")]
    seconds = _timed(argv, store)
    t = Tracker(f"sqlite:///{store}/mlflow.db")
    runs = t.client.search_runs([t.client.get_experiment_by_name("smoke").experiment_id], "tags.run_id != ''")
    assert len(runs) == N_RUNS and all(r.info.status == "FINISHED" for r in runs)  # the time is of 4 trained runs
    return seconds


def test_backends_vs_bare_loop(tmp_path):
    bare = _timed([sys.executable, str(ROOT / "benchmarks" / "bare_loop.py"), SUITE, *OVERRIDES], ROOT)
    local1 = _harness(tmp_path, "local1", "--workers", "1")
    local2 = _harness(tmp_path, "local2", "--workers", "2")
    has_ray = importlib.util.find_spec("ray") is not None
    ray2 = _harness(tmp_path, "ray2", "--backend", "ray", "--workers", "2") if has_ray else None
    print(f"\n[bench] {N_RUNS} smoke runs x 150 steps, wall time: bare loop {bare:.1f} s, local 1 worker {local1:.1f} s, "
          f"local 2 workers {local2:.1f} s, ray 2 CPUs " + (f"{ray2:.1f} s" if ray2 else "not installed (make install-scale)"))
    print(f"[bench] harness(1 worker) / bare loop = {local1 / bare:.2f}  (per-run overhead {(local1 - bare) / N_RUNS:.1f} s)")
    print(f"[bench] 2-worker speed-up vs 1 worker = x{local1 / local2:.2f}")
    if ray2:
        print(f"[bench] ray(2) / local(2) = {ray2 / local2:.2f}")
