"""SLURM backend through submitit: one SLURM job per run attempt, the runs a pool starts together submitted
as one job array (`scheduler.slurm.array`), at most `workers` jobs in flight.

A job runs `SlurmTask`: the same worker command as every backend (`python -m harness.worker ...`; the files
it names, e.g. the RunSpec JSON, travel inside submitit's pickle and are written on the node), as a
subprocess whose exit code and output tail come back as the job's result.  sbatch options come from
`scheduler.slurm` (partition, time limit, account, QOS, memory, any other option) and the suite's overrides
on the command line; `slots_per_gpu` maps to GPU shares when `scheduler.slurm.gpus` is set: a whole GPU per
run (`--gpus-per-task=1`) for 1, else one GRES shard (`--gres=shard:1`, the cluster defines `slots_per_gpu`
shards per GPU).  CPU: one core per run (the worker is single-threaded).

Preemption and time limits: submitit's handler in the job (SIGUSR2 `signal_delay_s` before the limit, or
a preemption) requeues it (`scontrol requeue`; SLURM's own PreemptMode=REQUEUE does the same).  The requeued
job starts the worker again with `--reopen` ($SLURM_RESTART_COUNT > 0): it reopens the same MLflow run and
resumes in place from its checkpoint (harness.worker, harness.runner).  A job that ends without result
(scancel, node failure) or a worker that fails is an attempt the orchestrator retries like any other.

Job state comes from `squeue` (no accounting database needed); a job is over once squeue no longer lists it
(or lists it COMPLETED/FAILED/...), then its result is read from submitit's folder."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import submitit
from submitit.core.utils import pickle_load

from harness.backends.base import (
    NODE_ENV,
    PARENT_PID_ENV,
    SINGLE_THREAD_ENV,
    Job,
    Slot,
    forwarded_env,
    ship_files,
    unship,
)
from harness.spec.models import SlurmSpec
from harness.store import read_tail

LOG_TAIL_BYTES = 4 << 20
NO_RESULT_RC = -1  # the job ended without a result (cancelled before the worker ended, node lost, sbatch error)
ACTIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING",
          "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT", "RESV_DEL_HOLD", "SPECIAL_EXIT", "PREEMPTED"}
POLL_S = 1.0  # squeue at most this often
RESULT_WAIT_S = 5.0  # a job gone from squeue whose result file is not there yet (a shared file system's delay)


class SlurmTask:
    """What a SLURM job runs (pickled by submitit): the worker command; returns (exit code, output tail)."""

    def __call__(self, argv: list[str], files: dict[int, tuple[str, bytes]], own_python: bool, env: dict[str, str]) -> tuple[int, bytes]:
        job_dir = Path(tempfile.mkdtemp(prefix="harness-slurm-"))
        argv = unship(argv, files, job_dir, own_python)
        if int(os.environ.get("SLURM_RESTART_COUNT", "0")) > 0:  # requeued: the run was started by this job before
            argv.append("--reopen")
        array = os.environ.get("SLURM_ARRAY_JOB_ID")
        job = f"{array}_{os.environ.get('SLURM_ARRAY_TASK_ID')}" if array else os.environ.get("SLURM_JOB_ID", "?")
        node = f"{socket.gethostname()} slurm:{job}"
        child_env = {**os.environ, **env, **{k: v for k, v in SINGLE_THREAD_ENV.items() if k != "CUDA_VISIBLE_DEVICES"},
                     NODE_ENV: node, PARENT_PID_ENV: str(os.getpid())}
        log_path = job_dir / "worker.log"
        with open(log_path, "wb") as log:
            log.write(f"[slurm] node {node}, restart {os.environ.get('SLURM_RESTART_COUNT', '0')}\n".encode())
            log.flush()
            proc = subprocess.Popen(argv, env=child_env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            rc = proc.wait()
        return rc, read_tail(log_path, LOG_TAIL_BYTES)

    def checkpoint(self, *args, **kwargs) -> submitit.helpers.DelayedSubmission:
        """On a time-out, submitit requeues the job with the same call (the worker resumes in place)."""
        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


def sbatch_parameters(spec: SlurmSpec, slots_per_gpu: int, job_name: str) -> dict:
    """submitit SlurmExecutor parameters from the suite's `scheduler.slurm`."""
    params: dict = {"job_name": job_name, "time": spec.time_min, "ntasks_per_node": 1, "cpus_per_task": 1,
                    "signal_delay_s": min(90, spec.time_min * 30), "stderr_to_stdout": True}
    params |= {k: v for k, v in (("partition", spec.partition), ("account", spec.account), ("qos", spec.qos)) if v}
    if spec.mem_gb is not None:
        params["mem"] = f"{int(spec.mem_gb * 1024)}MB"
    if spec.gpus:
        params |= {"gpus_per_task": 1} if slots_per_gpu == 1 else {"gres": "shard:1"}
    params["additional_parameters"] = {"requeue": True, **spec.sbatch}
    return params


def squeue_states(job_ids: list[str]) -> dict[str, str] | None:
    """job id (array elements as `<job>_<index>`) -> state, for the jobs squeue still lists; None when squeue
    cannot answer (slurmctld restarting): nothing is known to have ended then."""
    mains = sorted({j.split("_")[0] for j in job_ids})
    if not mains:
        return {}
    try:
        out = subprocess.run(["squeue", "-h", "-r", "-o", "%i|%T", "-j", ",".join(mains)], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return None
    if out.returncode != 0 and "Invalid job id" not in out.stderr:  # (an id SLURM has forgotten: ended long ago)
        print(f"[slurm] squeue failed, retrying: {out.stderr.strip()[:200]}", file=sys.stderr)
        return None
    states = {}
    for line in out.stdout.splitlines():
        jid, _, state = line.partition("|")
        states[jid.strip()] = state.strip()
    return states


class SlurmBackend:
    """`workers` jobs in flight at most (default 16); `folder`: submitit's files (shared with the nodes)."""

    def __init__(self, spec: SlurmSpec, folder: Path, workers: int | None = None, slots_per_gpu: int = 1,
                 job_name: str = "harness") -> None:
        self.spec, self.folder, self.workers = spec, Path(spec.folder) if spec.folder else folder, workers or 16
        self.params = sbatch_parameters(spec, slots_per_gpu, job_name)
        self.executor: submitit.SlurmExecutor | None = None
        self.pending: list[tuple[Job, list[str]]] = []
        self.running: dict[str, tuple[Job, submitit.Job]] = {}  # SLURM job id -> (job, its submitit handle)
        self.gone: dict[str, float] = {}  # job id -> when squeue stopped listing it with no result yet
        self.unsubmitted: list[tuple[Job, int]] = []  # jobs sbatch refused: they end at the next wait
        self._last_poll = 0.0

    def open(self) -> list[Slot]:
        if self.executor is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.executor = submitit.SlurmExecutor(folder=self.folder / "%j", max_num_timeout=self.spec.max_requeues)
            self.executor.update_parameters(**self.params)
        return [Slot(i) for i in range(self.workers)]

    def launch(self, job: Job, slot: Slot, argv: list[str]) -> None:
        self.pending.append((job, argv))  # submitted at the next wait(), with the others started in this round

    def _submit(self) -> None:
        assert self.executor is not None
        batch, self.pending = self.pending, []
        env = forwarded_env()
        try:
            if self.spec.array and len(batch) > 1:
                with self.executor.batch():
                    handles = [self.executor.submit(SlurmTask(), argv, ship_files(argv), argv[0] == sys.executable, env) for _, argv in batch]
            else:
                handles = [self.executor.submit(SlurmTask(), argv, ship_files(argv), argv[0] == sys.executable, env) for _, argv in batch]
        except (OSError, subprocess.SubprocessError, submitit.core.utils.FailedJobError,
                submitit.core.utils.FailedSubmissionError) as e:  # sbatch refused (a bad partition...)
            for job, _ in batch:
                job.log_path.parent.mkdir(parents=True, exist_ok=True)
                job.log_path.write_text(f"[slurm] sbatch failed: {e}\n")
                self.unsubmitted.append((job, NO_RESULT_RC))
            return
        for (job, _), handle in zip(batch, handles):
            self.running[handle.job_id] = (job, handle)
            job.log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(job.log_path, "ab") as log:
                log.write(f"[slurm] job {handle.job_id} submitted, folder {handle.paths.folder}\n".encode())

    def _result(self, job_id: str, handle: submitit.Job) -> tuple[int, bytes] | None:
        """(rc, output) of an ended job; None while its result file may still be on its way."""
        path = handle.paths.result_pickle
        if path.exists():
            outcome, value = pickle_load(path)
            if outcome == "success":
                return value
            return NO_RESULT_RC, f"[slurm] job {job_id} raised in submitit: {value}\n".encode()
        first = self.gone.setdefault(job_id, time.monotonic())
        if time.monotonic() - first < RESULT_WAIT_S:
            return None
        stdout = handle.paths.stdout
        tail = read_tail(stdout, LOG_TAIL_BYTES)
        return NO_RESULT_RC, tail + f"\n[slurm] job {job_id} ended without a result (cancelled, or its node failed)\n".encode()

    def wait(self, timeout: float) -> list[tuple[Job, int]]:
        if self.pending:
            self._submit()
        deadline = time.monotonic() + timeout
        while self.running or self.unsubmitted:
            time.sleep(max(0.0, min(POLL_S - (time.monotonic() - self._last_poll), deadline - time.monotonic())))
            self._last_poll = time.monotonic()
            states = squeue_states(list(self.running))
            ended, self.unsubmitted = self.unsubmitted, []
            for job_id, (job, handle) in list(self.running.items()) if states is not None else ():
                if states.get(job_id) in ACTIVE:
                    continue
                result = self._result(job_id, handle)
                if result is not None:
                    del self.running[job_id]
                    rc, output = result
                    with open(job.log_path, "ab") as log:
                        log.write(output)
                    ended.append((job, rc))
            if ended or time.monotonic() >= deadline:
                return ended
        return []

    def stop(self, grace_s: float = 5.0) -> list[Job]:
        """scancel every job in flight (SLURM sends SIGTERM, then SIGKILL after its KillWait); after `grace_s`
        the ones still listed get SIGKILL."""
        stopped = [job for job, _ in self.pending] + [job for job, _ in self.running.values()]
        self.pending = []
        ids = list(self.running)
        if ids:
            subprocess.run(["scancel", *ids], capture_output=True, timeout=30)
            deadline = time.monotonic() + grace_s
            while time.monotonic() < deadline and set(squeue_states(ids) or ids) & set(ids):
                time.sleep(0.5)
            left = sorted(set(squeue_states(ids) or ids) & set(ids))
            if left:
                subprocess.run(["scancel", "--signal=KILL", "--full", *left], capture_output=True, timeout=30)
        self.running.clear()
        return stopped

    def close(self) -> None:
        if self.running or self.pending:
            self.stop()
        self.executor = None
