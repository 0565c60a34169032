"""Timing helpers of the benchmarks: best-of-N of a callable (in-process ratios) and the median wall time
of whole processes (start-up included), each run on a fresh working folder."""

import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def best_time(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def timed(argv: list[str], cwd: Path, timeout: float = 1200) -> tuple[float, subprocess.CompletedProcess]:
    """(wall seconds, completed process) of one command; fails on a non-zero exit."""
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    seconds = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr[-3000:]
    return seconds, proc


def median_wall(make_argv: Callable[[Path], list[str]], folder: Path, repeat: int = 3,
                check: Callable[[Path, subprocess.CompletedProcess], None] = lambda d, p: None) -> tuple[float, float, float]:
    """(median, min, max) wall seconds of `repeat` runs of a command, each in a new subfolder of `folder`
    (`make_argv(subfolder)` builds its command line; `check(subfolder, proc)` validates each run)."""
    times = []
    for i in range(repeat):
        d = folder / f"{len(list(folder.iterdir())) if folder.exists() else 0}-{i}"
        d.mkdir(parents=True)
        seconds, proc = timed(make_argv(d), d)
        check(d, proc)
        times.append(seconds)
    return statistics.median(times), min(times), max(times)


def show(stats: tuple[float, float, float]) -> str:
    med, lo, hi = stats
    return f"{med:.1f} s (min {lo:.1f}, max {hi:.1f})"
