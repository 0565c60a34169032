"""The launcher's driver side (see launcher.py): jobs identified, finished ones skipped, the rest run on a
harness pool with one MLflow child run each, retried, their JobReturns read back in order."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cloudpickle
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, setup_globals
from omegaconf import DictConfig, OmegaConf, open_dict
from rich.console import Console

from harness.backends import Job, Slot, make_pool
from harness.backends.base import JobQueue
from harness.jobs import TrackedJobs
from harness.session import suite_session
from harness.spec.models import SchedulerSpec
from harness.store import default_uri
from harness.tags import Kind, Status, Tag
from harness.track import Tracker

log = logging.getLogger(__name__)
JOB = [sys.executable, "-m", "hydra_plugins.harness_launcher.job"]
RETURN_VALUE = "return_value"  # the metric holding a job's return value (when it is a number)


def job_key(overrides: Sequence[str], config: DictConfig) -> str:
    """A job's identity: its overrides and its composed config (Hydra's own `hydra` node left out: it holds
    the job's number, time-stamped output folders and the like)."""
    body = OmegaConf.to_container(config, resolve=False)
    body.pop("hydra", None)
    text = json.dumps({"overrides": sorted(overrides), "config": body}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _sweep_config(launcher: Any, overrides: Sequence[str], idx: int) -> DictConfig:
    cfg = launcher.hydra_context.config_loader.load_sweep_config(launcher.config, list(overrides))
    with open_dict(cfg):
        cfg.hydra.job.id = f"{cfg.hydra.job.name}_{idx}"
        cfg.hydra.job.num = idx
    return cfg


def _stored(tracker: Tracker, mlflow_id: str, overrides: Sequence[str], cfg: DictConfig) -> JobReturn:
    """The JobReturn of a job that FINISHED in an earlier multirun: its stored return value."""
    value = tracker.final_metrics(mlflow_id).get(RETURN_VALUE)
    task_cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    return JobReturn(overrides=list(overrides), cfg=task_cfg, hydra_cfg=cfg, task_name=cfg.hydra.job.name,
                     status=JobStatus.COMPLETED, _return_value=value)


def _read(path: Path, overrides: Sequence[str], rc: int | None, log_path: Path) -> JobReturn:
    if path.exists():
        return cloudpickle.loads(path.read_bytes())
    return JobReturn(overrides=list(overrides), status=JobStatus.FAILED,
                     _return_value=RuntimeError(f"the job's process ended with exit code {rc} before it returned; log: {log_path}"))


def launch(launcher: Any, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
    setup_globals()
    configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
    sweep_dir = Path(str(launcher.config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    configs = [_sweep_config(launcher, o, initial_job_idx + i) for i, o in enumerate(job_overrides)]
    keys = [job_key(o, c) for o, c in zip(job_overrides, configs)]
    name = launcher.experiment or str(launcher.config.hydra.job.name)
    tracker, console = Tracker(launcher.tracking_uri or default_uri()), Console(stderr=True)
    scheduler = SchedulerSpec(workers=launcher.workers, slots_per_gpu=launcher.slots_per_gpu, max_retries=launcher.max_retries)
    with suite_session(name, tracker, console) as session:
        done = tracker.finished(session.experiment_id)  # the orchestrator's skip logic: FINISHED run_ids
        todo = [i for i, k in enumerate(keys) if k not in done]
        log.info(f"Harness launcher: {len(job_overrides)} jobs, {len(job_overrides) - len(todo)} already finished "
                 f"(skipped), {len(todo)} to run; sweep output dir: {sweep_dir}")
        results: dict[int, JobReturn] = {i: _stored(tracker, done[k], job_overrides[i], configs[i])
                                         for i, k in enumerate(keys) if k in done}
        if todo:
            results.update(_run(launcher, session, tracker, scheduler, todo, job_overrides, configs, keys))
    return [results[i] for i in range(len(job_overrides))]


def _run(launcher: Any, session: Any, tracker: Tracker, scheduler: SchedulerSpec, todo: list[int],
         job_overrides: Sequence[Sequence[str]], configs: list[DictConfig], keys: list[str]) -> dict[int, JobReturn]:
    command = " ".join(shlex.quote(a) for a in sys.argv)
    parent = tracker.start_parent(session.experiment_id, f"{session.suite} multirun {time.strftime('%Y-%m-%d %H:%M:%S')}", {
        **session.tags, Tag.KIND: Kind.INVOCATION, Tag.COMMAND: command, Tag.N_RUNS: str(len(todo)),
        Tag.ORCHESTRATOR_PID: str(os.getpid())})
    tracked = TrackedJobs(tracker, session.experiment_id, parent)
    by_key = {keys[i]: i for i in todo}
    rcs: dict[int, int] = {}
    singletons = Singleton.get_state()
    log_dir = session.store.log_dir(session.suite)
    app_dir = str(Path(sys.argv[0]).resolve().parent)  # where the app's own modules are imported from
    with tempfile.TemporaryDirectory(prefix="harness-hydra-") as tmp, \
            make_pool(scheduler, scheduler.workers, None, log_dir) as pool:
        queue = JobQueue()
        for i in todo:
            payload = Path(tmp) / f"{keys[i]}.pkl"
            payload.write_bytes(cloudpickle.dumps({"hydra_context": launcher.hydra_context, "task_function": launcher.task_function,
                                                   "config": configs[i], "singletons": singletons}))
            queue.push(Job(keys[i], [*JOB, str(payload), "--result", str(Path(tmp) / f"{keys[i]}.ret"), "--uri", tracker.uri,
                                     "--app-dir", app_dir], log_dir / f"{keys[i]}.log"))

        def on_start(job: Job, slot: Slot) -> list[str]:
            i = by_key[job.key]
            shown = " ".join(filter_overrides(job_overrides[i]))
            log.info(f"\t#{configs[i].hydra.job.num} : {shown} (slot {slot.index}"
                     + (f", CUDA_VISIBLE_DEVICES={slot.gpu})" if slot.gpu is not None else ")"))
            tags = {**session.tags, Tag.RUN_ID: job.key, Tag.ATTEMPT: str(job.attempt), Tag.SLOT: str(slot.index),
                    Tag.HYDRA_OVERRIDES: shown, Tag.HYDRA_JOB_NUM: str(configs[i].hydra.job.num)}
            return [*tracked.start(job, shown or "(no overrides)", tags), "--attempt", str(job.attempt)]

        def on_end(job: Job, rc: int) -> None:
            status, _ = tracked.end(job, rc)
            rcs[by_key[job.key]] = rc
            if status != Status.FINISHED and job.attempt < scheduler.max_retries:
                job.attempt += 1
                Path(tmp, f"{job.key}.ret").unlink(missing_ok=True)
                queue.push(job)

        try:
            pool.run(queue, on_start, on_end)
        except BaseException as exc:  # Ctrl-C, SIGTERM or a bug: no job of this multirun stays RUNNING
            tracked.close_open()
            tracker.terminate(parent, Status.KILLED if isinstance(exc, KeyboardInterrupt) else Status.FAILED)
            raise
        out = {i: _read(Path(tmp) / f"{keys[i]}.ret", job_overrides[i], rcs.get(i), log_dir / f"{keys[i]}.log") for i in todo}
    ok = all(r.status == JobStatus.COMPLETED for r in out.values())
    tracker.terminate(parent, Status.FINISHED if ok else Status.FAILED)
    return out
