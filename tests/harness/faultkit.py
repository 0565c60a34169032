"""Helpers of the process-level tests (test_faults.py, teamkit.py and the team benchmark): waiting for a
condition, a background CLI's output, the steps a metric is logged at.  No conftest import, so that the
benchmarks (which have a conftest of their own) can use them too."""

import subprocess
import time


def output(proc: subprocess.Popen) -> str:
    return proc.log_path.read_text()


def wait_for(cond, timeout: float, what: str, poll: float = 0.3):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def expected_steps(key: str, steps: int, log_every: int, eval_every: int) -> list[int]:
    if key.startswith("train/"):
        return sorted({1, *range(log_every, steps + 1, log_every)})
    if key in ("n_params", "time/train_seconds") or key.startswith("throughput/"):  # logged once, at the end
        return [steps]
    return sorted({*range(eval_every, steps + 1, eval_every), steps})

