"""The local backend: this machine's device slots, every job forked from one warm process
(harness.backends.warm), so that a run's start costs milliseconds; the warm process starts when the
pool opens (or earlier: `WarmWorkers.start()` before the suite is even loaded) and ends with it."""

from __future__ import annotations

from pathlib import Path

from harness.backends.base import Job, Slot
from harness.backends.warm import GRACE_S, WarmWorkers


class LocalBackend:
    def __init__(self, slots: list[Slot], warm: WarmWorkers | None = None, log_path: Path | None = None) -> None:
        self.slots = slots
        self.warm = warm or WarmWorkers(log_path or Path(".harness") / "logs" / "warm.log")
        self.jobs: dict[str, Job] = {}  # token -> job in flight
        self._next = 0

    def open(self) -> list[Slot]:
        self.warm.start()
        return self.slots

    def launch(self, job: Job, slot: Slot, argv: list[str]) -> None:
        token = f"{self._next}"
        self._next += 1
        self.jobs[token] = job
        self.warm.launch(token, argv, job.log_path, slot.env())

    def _ended(self, events: list[dict]) -> list[tuple[Job, int]]:
        return [(self.jobs.pop(e["token"]), e["rc"]) for e in events if "rc" in e and e["token"] in self.jobs]

    def wait(self, timeout: float) -> list[tuple[Job, int]]:
        return self._ended(self.warm.events(timeout))

    def stop(self, grace_s: float = GRACE_S) -> list[Job]:
        stopped = list(self.jobs.values())
        self.warm.stop_all(grace_s)
        self.jobs.clear()
        return stopped

    def close(self) -> None:
        self.warm.close()
