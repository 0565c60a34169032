"""Ray backend: a warm worker actor per slot, each holding a warm process (harness.backends.warm) on its
node, so that a run's imports are paid once per slot, not once per run.

An actor asks for 1 CPU and, on a cluster with GPUs, 1/slots_per_gpu of a GPU (so several small runs
share one GPU); Ray picks the node and device and the actor hands its CUDA_VISIBLE_DEVICES to every run
it forks.  Ray never retries (actors are not restarted, tasks not retried): the orchestrator does the
retries.  One run at a time per actor; `stop` (on a second actor thread) signals the run's process group.

Multi-node: every argument of the worker command that names a file on the driver (the RunSpec JSON)
is shipped with the call and written to a temp dir on the node; the worker's output comes back with
the result and is written to the job's log path on the driver when the run ends.  The tracking URI
must then reach the same store from every node (an MLflow server, see the README)."""

from __future__ import annotations

import logging
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # offline: no usage reporting

import ray  # noqa: E402

from harness.backends.base import NODE_ENV, Job, Slot, forwarded_env, ship_files, signal_group, unship, visible_gpus  # noqa: E402
from harness.backends.check import probe_ray_address  # noqa: E402
from harness.backends.warm import TRIAL_MODULES, WarmWorkers  # noqa: E402
from harness.store import read_tail  # noqa: E402

LOG_TAIL_BYTES = 4 << 20  # at most this much of a worker's output comes back to the driver
TASK_FAILED_RC = -1  # the actor itself died (node lost, actor killed): no exit code
LOCAL_OBJECT_STORE = 100 << 20  # results are an exit code and a log: keep the local store small


class WarmActor:
    """Runs one job at a time, each forked from the actor's own warm process."""

    def __init__(self) -> None:
        gpu_ids = ",".join(str(g) for g in ray.get_gpu_ids())
        node = f"{ray.util.get_node_ip_address()} ray:{ray.get_runtime_context().get_node_id()[:12]}"
        self.env = {**Slot(0, gpu_ids or None).env(), NODE_ENV: node}  # one thread, the GPUs Ray gave this actor
        self.header = f"[ray] node {node}, CUDA_VISIBLE_DEVICES={gpu_ids!r}\n"
        self.tmp = Path(tempfile.mkdtemp(prefix="harness-ray-"))
        self.warm = WarmWorkers(self.tmp / "warm.log").start()
        self.warm.preload(TRIAL_MODULES)  # a long-lived actor: its trials are warm too (optuna)
        self.pid: int | None = None
        self.done = threading.Event()

    def run(self, argv: list[str], files: dict[int, tuple[str, bytes]], own_python: bool, cwd: str,
            env: dict[str, str] | None = None) -> tuple[int, bytes]:
        """Run `argv` (`files`: argv index -> (name, content) written here first; `own_python`: argv[0]
        is the driver's interpreter, replaced by this node's; `env`: the driver's forwarded settings)
        and return (exit code, output tail)."""
        job_dir = Path(tempfile.mkdtemp(dir=self.tmp))
        argv = unship(argv, files, job_dir, own_python)
        log_path = job_dir / "worker.log"
        log_path.write_text(self.header)
        self.done.clear()
        self.warm.launch("job", argv, log_path, {**(env or {}), **self.env}, cwd if os.path.isdir(cwd) else str(job_dir))
        rc = None
        try:
            while rc is None:
                for e in self.warm.events(0.2):
                    if "pid" in e:
                        self.pid = e["pid"]
                    elif "rc" in e:
                        rc = e["rc"]
        finally:
            self.pid = None
            self.done.set()
        return rc, read_tail(log_path, LOG_TAIL_BYTES)

    def stop(self, grace_s: float) -> None:
        """SIGTERM the running job's process group, SIGKILL after `grace_s` (it runs on a second thread)."""
        pid = self.pid
        if pid is None or not signal_group(pid, signal.SIGTERM):
            return
        if not self.done.wait(grace_s):
            signal_group(pid, signal.SIGKILL)


class RayBackend:
    """`workers` caps the runs in flight (and is the CPU count of a local cluster); `address`: an existing
    cluster ('auto', 'ray://host:10001', 'host:6379'), or None to start a local one (kept between pool
    runs: retry rounds, tuning waves; shut down by close)."""

    def __init__(self, workers: int | None = None, slots_per_gpu: int = 1, address: str | None = None) -> None:
        self.workers, self.slots_per_gpu, self.address = workers, slots_per_gpu, address
        self.actors: list = []
        self.running: dict[ray.ObjectRef, tuple[Job, int]] = {}  # call -> (job, actor index)
        self.capacity = 0
        self.gpus_per_run = 0.0
        self._owns_ray = False

    # ------------------------------------------------------------ cluster and actors
    def _connect(self) -> None:
        if ray.is_initialized():  # ours from an earlier open, or the caller's (e.g. inside a Ray job): keep it
            return
        if self.address:
            probe_ray_address(self.address)  # ray.init would retry an unreachable address for minutes
            ray.init(address=self.address, log_to_driver=False, logging_level=logging.ERROR)
        else:
            ray.init(
                address="local", num_cpus=self.workers or os.cpu_count() or 1, num_gpus=len(visible_gpus()),
                include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
                object_store_memory=LOCAL_OBJECT_STORE,
            )
        self._owns_ray = True

    def open(self) -> list[Slot]:
        self._connect()
        if not self.actors:
            res = ray.cluster_resources()
            cpus, gpus = int(res.get("CPU", 1)), float(res.get("GPU", 0))
            self.gpus_per_run = 1.0 / self.slots_per_gpu if gpus else 0.0
            capacity = min(cpus, int(gpus * self.slots_per_gpu)) if gpus else cpus
            self.capacity = max(1, min(capacity, self.workers or capacity))
            actor = ray.remote(WarmActor).options(num_cpus=1, num_gpus=self.gpus_per_run, max_restarts=0,
                                                  max_task_retries=0, max_concurrency=2)
            self.actors = [actor.remote() for _ in range(self.capacity)]
        return [Slot(i) for i in range(self.capacity)]

    # ------------------------------------------------------------ jobs
    def launch(self, job: Job, slot: Slot, argv: list[str]) -> None:
        ref = self.actors[slot.index].run.remote(argv, ship_files(argv), argv[0] == sys.executable, str(Path.cwd()), forwarded_env())
        self.running[ref] = (job, slot.index)

    def _collect(self, ref: ray.ObjectRef) -> tuple[Job, int]:
        job, _ = self.running.pop(ref)
        try:
            rc, output = ray.get(ref)
        except ray.exceptions.RayError as e:  # the actor, not the run, failed: the orchestrator decides on a retry
            rc, output = TASK_FAILED_RC, f"[ray] worker actor failed: {type(e).__name__}: {e}\n".encode()
        job.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(job.log_path, "ab") as log:
            log.write(output)
        return job, rc

    def wait(self, timeout: float) -> list[tuple[Job, int]]:
        if not self.running:
            return []
        done, _ = ray.wait(list(self.running), num_returns=1, timeout=timeout)
        if done:  # collect everything else that is ready too
            done, _ = ray.wait(list(self.running), num_returns=len(self.running), timeout=0)
        return [self._collect(ref) for ref in done]

    def stop(self, grace_s: float = 5.0) -> list[Job]:
        """Stop every run in flight (SIGTERM to its process group, SIGKILL after `grace_s`); actors still
        busy after that are killed (their warm process and runs die with them) and replaced on the next open."""
        stopped = [job for job, _ in self.running.values()]
        if self.running and ray.is_initialized():
            for _, index in self.running.values():
                self.actors[index].stop.remote(grace_s)
            refs = list(self.running)
            _, left = ray.wait(refs, num_returns=len(refs), timeout=grace_s + 2.0)
            for ref in left:
                ray.kill(self.actors[self.running[ref][1]])
            if left:
                self.actors = []
        self.running.clear()
        return stopped

    def close(self) -> None:
        """Kill the actors; shut down a cluster this backend started."""
        if ray.is_initialized():
            for a in self.actors:
                ray.kill(a)
        self.actors = []
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()
        self._owns_ray = False
