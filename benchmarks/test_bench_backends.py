"""Backends (`make bench`): the smoke suite at 150 steps through the local backend with 1 and 2 workers
and through Ray (a local cluster of 2 CPUs), against the reference: a bare loop (benchmarks/bare_loop.py:
build + fit in one process, no MLflow, no subprocesses).  Every variant is a fresh process on a fresh
store, timed from the outside (start-up included; `--no-report` leaves the report out), the median of 3.

Printed: harness(1 worker) / bare at 4 runs; the fixed overhead per run, from the slope between 4 and 8
runs ((harness(8) - harness(4)) - (bare(8) - bare(4))) / 4, so that one-time costs (imports, a new store's
schema) do not count; 2 workers vs 1, whole process and the runs phase ("runs took" in the CLI's
summary: first launch to last end); ray(2) / local(2).  No timed assertions."""

import importlib.util
import re
import sys
from pathlib import Path

import pytest
from timing import median_wall, show

from harness.track import Tracker

pytestmark = pytest.mark.bench

ROOT = Path(__file__).resolve().parents[1]
SUITE = str(ROOT / "suites" / "smoke.yaml")
STEPS = ["defaults.training.steps=150"]
SEEDS = {4: "seeds=[0,1]", 8: "seeds=[0,1,2,3]"}  # x 2 position embeddings


def harness(n: int, *options: str):
    return lambda d: [sys.executable, "-m", "harness.cli", "run", SUITE, *STEPS, SEEDS[n], *options, "--no-report",
                      "--tracking-uri", f"sqlite:///{d}/mlflow.db", "--reports-dir", str(d / "reports")]


def bare(n: int):
    return lambda d: [sys.executable, str(ROOT / "benchmarks" / "bare_loop.py"), SUITE, *STEPS, SEEDS[n]]


def trained(n: int):
    def check(d: Path, proc) -> None:
        if not (d / "mlflow.db").exists():  # the bare loop
            assert f"bare loop: {n} runs" in proc.stdout
            return
        t = Tracker(f"sqlite:///{d}/mlflow.db")
        runs = t.client.search_runs([t.experiment_id("smoke")], "tags.run_id != ''")
        assert len(runs) == n and all(r.info.status == "FINISHED" for r in runs)  # the time is of n trained runs
        phases.append(float(re.search(r"runs took ([0-9.]+) s", proc.stderr).group(1)))

    phases: list[float] = []
    check.phases = phases
    return check


def test_backends_vs_bare_loop(tmp_path):
    stats, phase = {}, {}
    for n in (4, 8):
        stats["bare", n] = median_wall(bare(n), tmp_path / f"bare{n}", check=trained(n))
        for w in (1, 2):
            check = trained(n)
            stats[w, n] = median_wall(harness(n, "--workers", str(w)), tmp_path / f"h{w}-{n}", check=check)
            phase[w, n] = sorted(check.phases)[1]
    ray = None
    if importlib.util.find_spec("ray") is not None:
        ray = median_wall(harness(4, "--backend", "ray", "--workers", "2"), tmp_path / "ray", repeat=1, check=trained(4))
    med = {k: v[0] for k, v in stats.items()}
    overhead = ((med[1, 8] - med[1, 4]) - (med["bare", 8] - med["bare", 4])) / 4
    print(f"\n[bench] smoke x 150 steps, wall (median of 3): bare loop 4 runs {show(stats['bare', 4])}, 8 runs {show(stats['bare', 8])}")
    for w in (1, 2):
        print(f"[bench]   local {w} worker(s): 4 runs {show(stats[w, 4])} (runs phase {phase[w, 4]:.1f} s), "
              f"8 runs {show(stats[w, 8])} (runs phase {phase[w, 8]:.1f} s)")
    print(f"[bench] harness(1 worker) / bare loop = {med[1, 4] / med['bare', 4]:.2f} at 4 runs, {med[1, 8] / med['bare', 8]:.2f} at 8 runs")
    print(f"[bench] fixed overhead per run (slope 4 -> 8 runs) = {overhead:.2f} s")
    print(f"[bench] 2 workers vs 1: whole process x{med[1, 4] / med[2, 4]:.2f} (4 runs), x{med[1, 8] / med[2, 8]:.2f} (8 runs); "
          f"runs phase x{phase[1, 4] / phase[2, 4]:.2f} (4 runs), x{phase[1, 8] / phase[2, 8]:.2f} (8 runs)")
    if ray:
        print(f"[bench] ray 2 CPUs, 4 runs {show(ray)}: ray(2) / local(2) = {ray[0] / med[2, 4]:.2f}")
    else:
        print("[bench] ray not installed (make install-scale)")
