"""Ray backend: one Ray task per run, each running the same worker command as the local pool.

A task asks for 1 CPU and, on a cluster with GPUs, 1/slots_per_gpu of a GPU (so several small runs
share one GPU); Ray picks the node and device and the task hands its CUDA_VISIBLE_DEVICES to the
worker subprocess.  Ray never retries a task (max_retries=0): the orchestrator does the retries.
At most as many tasks as there are slots are in flight, so a run's MLflow entry (created by
`on_start`) is not created long before the run starts.

Multi-node: every argument of the worker command that names a file on the driver (the RunSpec JSON)
is shipped with the task and written to a temp dir on the node; the worker's output comes back with
the result and is written to the job's log path on the driver when the run ends.  The tracking URI
must then reach the same store from every node (an MLflow server, see the README)."""

from __future__ import annotations

import functools
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Callable, Sequence

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # offline: no usage reporting

import ray  # noqa: E402

from harness.backends import probe_ray_address  # noqa: E402
from harness.sched import Job, Slot, set_parent_death_signal, visible_gpus  # noqa: E402

LOG_TAIL_BYTES = 4 << 20  # at most this much of a worker's output comes back to the driver
TASK_FAILED_RC = -1  # the task itself died (node lost, worker process crashed): no exit code
LOCAL_OBJECT_STORE = 100 << 20  # results are an exit code and a log: keep the local store small


def _stop_group(proc: subprocess.Popen, grace_s: float) -> None:
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def run_worker(argv: list[str], files: dict[int, tuple[str, bytes]], own_python: bool, cwd: str, grace_s: float) -> tuple[int, bytes]:
    """Body of the Ray task: run `argv` as a subprocess (single-threaded, the task's GPUs) and return
    (exit code, output).  `files`: argv index -> (name, content) written to a temp dir on this node;
    `own_python`: argv[0] is the driver's interpreter, replaced by this node's.  A cancelled task gets
    a KeyboardInterrupt here and stops the worker's process group before re-raising."""
    gpu_ids = ",".join(str(g) for g in ray.get_gpu_ids())
    env = {**os.environ, **Slot(0, gpu_ids or None).env()}  # one thread, the GPUs Ray gave the task
    argv = list(argv)
    if own_python:
        argv[0] = sys.executable
    with tempfile.TemporaryDirectory(prefix="harness-ray-") as tmp:
        for i, (name, data) in files.items():
            (Path(tmp) / name).write_bytes(data)
            argv[i] = str(Path(tmp) / name)
        log_path = Path(tmp) / "worker.log"
        with open(log_path, "wb") as log:
            log.write(f"[ray] node {ray.util.get_node_ip_address()}, CUDA_VISIBLE_DEVICES={gpu_ids!r}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=cwd if os.path.isdir(cwd) else tmp,
                start_new_session=True,  # SIGKILL when the Ray worker running the task dies (a force-cancelled task)
                preexec_fn=functools.partial(set_parent_death_signal, signal.SIGKILL),
            )
            try:
                while proc.poll() is None:
                    time.sleep(0.1)  # a polling wait: ray.cancel's KeyboardInterrupt lands between sleeps
            except BaseException:
                _stop_group(proc, grace_s)
                raise
        with open(log_path, "rb") as f:
            f.seek(max(0, log_path.stat().st_size - LOG_TAIL_BYTES))
            return proc.returncode, f.read()


_REMOTE_WORKER = ray.remote(run_worker)


class RayPool:
    """LocalPool's interface over Ray.  `workers` caps the runs in flight (and is the CPU count of a
    local cluster); `address`: an existing cluster ('auto', 'ray://host:10001', 'host:6379'), or None
    to start a local one for the duration of `run`."""

    def __init__(self, workers: int | None = None, slots_per_gpu: int = 1, address: str | None = None, poll_s: float = 1.0) -> None:
        self.workers = workers
        self.slots_per_gpu = slots_per_gpu
        self.address = address
        self.poll_s = poll_s
        self.running: dict[ray.ObjectRef, tuple[Job, Slot]] = {}
        self.interrupted: list[Job] = []
        self.capacity = 0
        self.gpus_per_run = 0.0
        self._owns_ray = False

    # ------------------------------------------------------------ cluster
    def _connect(self) -> None:
        if self._owns_ray and ray.is_initialized():  # ours, from an earlier run() of this pool: keep it (see close)
            return
        if ray.is_initialized():  # e.g. the caller runs inside a Ray job: use it, leave it running
            self._owns_ray = False
        elif self.address:
            probe_ray_address(self.address)  # ray.init would retry an unreachable address for minutes
            ray.init(address=self.address, log_to_driver=False, logging_level=logging.ERROR)
            self._owns_ray = True
        else:
            ray.init(
                address="local", num_cpus=self.workers or os.cpu_count() or 1, num_gpus=len(visible_gpus()),
                include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
                object_store_memory=LOCAL_OBJECT_STORE,
            )
            self._owns_ray = True
        res = ray.cluster_resources()
        cpus, gpus = int(res.get("CPU", 1)), float(res.get("GPU", 0))
        self.gpus_per_run = 1.0 / self.slots_per_gpu if gpus else 0.0
        self.capacity = min(cpus, int(gpus * self.slots_per_gpu)) if gpus else cpus
        self.capacity = max(1, min(self.capacity, self.workers or self.capacity))

    def _disconnect(self) -> None:
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()
        self._owns_ray = False

    # ------------------------------------------------------------ jobs
    def _submit(self, job: Job, extra: list[str]) -> ray.ObjectRef:
        argv = job.argv + extra
        files = {i: (Path(a).name, Path(a).read_bytes()) for i, a in enumerate(argv) if i > 0 and os.path.isfile(a)}  # isfile: False for any non-path
        task = _REMOTE_WORKER.options(num_cpus=1, num_gpus=self.gpus_per_run, max_retries=0, retry_exceptions=False, name=f"harness:{job.key}")
        return task.remote(argv, files, argv[0] == sys.executable, str(Path.cwd()), 5.0)

    def _collect(self, job: Job, ref: ray.ObjectRef) -> int:
        try:
            rc, output = ray.get(ref)
        except ray.exceptions.RayError as e:  # the task, not the run, failed: the orchestrator decides on a retry
            rc, output = TASK_FAILED_RC, f"[ray] task failed: {type(e).__name__}: {e}\n".encode()
        job.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(job.log_path, "ab") as log:
            log.write(output)
        return rc

    def run(
        self,
        jobs: Sequence[Job],
        on_start: Callable[[Job, Slot], list[str]],
        on_end: Callable[[Job, int], None],
        on_tick: Callable[[int], None] = lambda n_running: None,
    ) -> None:
        pending = deque(jobs)
        self.interrupted = []
        try:
            self._connect()
            free = deque(range(self.capacity))
            while pending or self.running:
                while pending and free:
                    job, slot = pending.popleft(), Slot(free.popleft())
                    extra = on_start(job, slot)
                    self.running[self._submit(job, extra)] = (job, slot)
                on_tick(len(self.running))
                done, _ = ray.wait(list(self.running), num_returns=1, timeout=self.poll_s)
                if done:  # collect everything else that is ready too
                    done, _ = ray.wait(list(self.running), num_returns=len(self.running), timeout=0)
                for ref in done:
                    job, slot = self.running.pop(ref)
                    rc = self._collect(job, ref)
                    free.append(slot.index)
                    on_end(job, rc)
        except BaseException:  # Ctrl-C or a bug in a callback: never leave tasks behind
            self.interrupted = self.stop_all()
            raise

    def close(self) -> None:
        """Shut down a cluster this pool started (kept between run() calls: retry rounds, tuning waves)."""
        self._disconnect()

    def stop_all(self, grace_s: float = 5.0) -> list[Job]:
        """Cancel every task in flight (its worker's process group gets SIGTERM, then SIGKILL after
        `grace_s`); tasks still alive after that are force-cancelled.  Shuts down a cluster we started."""
        stopped = [job for job, _ in self.running.values()]
        refs = list(self.running)
        if refs and ray.is_initialized():
            for ref in refs:
                ray.cancel(ref, force=False)
            _, left = ray.wait(refs, num_returns=len(refs), timeout=grace_s + 2.0)
            for ref in left:
                ray.cancel(ref, force=True)
        self.running.clear()
        self._disconnect()
        return stopped
