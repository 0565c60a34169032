"""Worker entry: `python -m harness.worker SPEC_JSON --uri URI --mlflow-id ID [--attempt N]
[--checkpoint-dir DIR] [--trial REF_JSON]`, as a process of its own or (the usual way) as `main(argv)`
in a child forked from a warm process (harness.backends.warm), which has imported everything already.

The parent created the child run; the worker fills it in and terminates it FINISHED (also for a
diverged run, tagged outcome=diverged) or FAILED with the traceback as an artifact.

A worker never outlives its orchestrator: when the pool names the parent in HARNESS_PARENT_PID, the
kernel is asked to SIGTERM the worker when that parent dies (Linux prctl PR_SET_PDEATHSIG).  On SIGTERM
the worker marks its run KILLED (outcome=killed) and exits 143; it never leaves its run RUNNING when it
has a chance to say otherwise.  With --checkpoint-dir, the run resumes from and saves to
DIR/<run_id>/resume.pt (see harness.train.resume); with a server store, from and to the store instead
(artifacts of the attempts: any node finds them).  --reopen: this run was started before by the same job
(a requeued SLURM job): it is resumed in place.  The run is tagged with the node it ran on ($HARNESS_NODE,
set by the Ray and SLURM backends, else the host name).  When the tracking server stays unreachable past
its deadline (harness.track.retry) the worker exits EXIT_TRACKING_LOST with the reason on stderr: the
orchestrator then marks the run FAILED with that exit code and log tail."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import tempfile
import traceback
from pathlib import Path

from harness.backends.base import NODE_ENV, PARENT_PID_ENV, set_parent_death_signal
from harness.tags import Outcome, Status, Tag

EXIT_TERMINATED = 128 + signal.SIGTERM
EXIT_TRACKING_LOST = 75  # EX_TEMPFAIL: the tracking server stayed unreachable past the deadline


def node_name() -> str:
    """Where this worker runs: $HARNESS_NODE (the backend's description of the node), else the host name."""
    return os.environ.get(NODE_ENV) or socket.gethostname()


class Terminated(BaseException):
    """SIGTERM reached the worker (a BaseException: no `except Exception` on the way swallows it)."""


_TERMINATED: list[int] = []  # the signal, once received


def _on_sigterm(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # recording KILLED runs once; a second SIGTERM must not cut it
    _TERMINATED.append(signum)
    raise Terminated(f"signal {signum}")


def die_with_parent(parent_pid: int) -> bool:
    """Have the kernel SIGTERM this process when its parent dies (Linux; elsewhere a no-op).  False if the
    parent is already gone (it died before the request was made: the signal will never come)."""
    set_parent_death_signal(signal.SIGTERM)
    return os.getppid() == parent_pid


def _record_killed(uri: str, mlflow_id: str) -> None:
    from harness.track import RunLog

    log = RunLog(uri, mlflow_id)
    log.set_tags({Tag.OUTCOME: Outcome.KILLED})
    log.finish(Status.KILLED)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="harness.worker")
    ap.add_argument("spec", type=Path)
    ap.add_argument("--uri", required=True)
    ap.add_argument("--mlflow-id", required=True)
    ap.add_argument("--trial", type=Path, default=None, help="TrialRef JSON: report evaluations to an Optuna trial")
    ap.add_argument("--attempt", type=int, default=0, help="0 for the first try of the run, 1 for the first retry, ...")
    ap.add_argument("--checkpoint-dir", type=Path, default=None, help="resume checkpoints go to DIR/<run_id>/resume.pt")
    ap.add_argument("--reopen", action="store_true", help="the run was started before by this job: resume it in place")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    from harness.track import TrackingUnavailable

    try:
        parent = os.environ.get(PARENT_PID_ENV)
        if parent is not None and not die_with_parent(int(parent)):
            raise Terminated("the orchestrator died before this worker started")
        return _work(args)
    except Terminated:  # before the run's log was open (or while recording another outcome)
        _record_killed(args.uri, args.mlflow_id)
        return EXIT_TERMINATED
    except TrackingUnavailable as e:  # nothing can be recorded: the orchestrator marks the run from the exit code
        sys.stderr.write(f"error: run {args.mlflow_id} failed: {e}\n")
        return EXIT_TRACKING_LOST


def _killed(log) -> int:
    log.flush()  # the metrics so far stay with the run
    log.set_tags({Tag.OUTCOME: Outcome.KILLED})
    log.finish(Status.KILLED)
    return EXIT_TERMINATED


def _work(args: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(int(os.environ.get("HARNESS_THREADS", "1")))
    from harness.plugins import load_plugins
    from harness.runner import run_one
    from harness.spec.models import RunSpec
    from harness.store import StoreLayout
    from harness.track import RunLog, TrackingUnavailable
    from harness.train.callbacks import StopRun

    load_plugins()
    spec = RunSpec.model_validate_json(args.spec.read_text())
    log = RunLog(args.uri, args.mlflow_id)
    in_store = StoreLayout.from_uri(args.uri).checkpoints_in_store
    try:
        if args.reopen:
            log.reopen()
            log.set_tags({Tag.REQUEUED: os.environ.get("SLURM_RESTART_COUNT", "1")})
        log.set_tags({Tag.NODE: node_name()})
        callbacks = []
        if args.trial is not None:
            from harness.tune.trial import ReportToTrial, TrialRef  # optuna: imported only for trials

            callbacks.append(ReportToTrial(TrialRef.read(args.trial)))
        with tempfile.TemporaryDirectory(prefix=f"run-{spec.run_id}-") as tmp:
            resume_file = None
            if args.checkpoint_dir is not None:  # a server store: a local scratch file, the checkpoint lives in the store
                resume_file = (Path(tmp) / "resume" if in_store else args.checkpoint_dir / spec.run_id) / "resume.pt"
            run_one(spec, log, Path(tmp), callbacks=callbacks, attempt=args.attempt, resume_file=resume_file,
                    checkpoints_in_store=in_store)
    except Terminated:
        return _killed(log)
    except TrackingUnavailable:
        raise
    except StopRun as stop:  # ended early on purpose (a pruned trial): not a failure
        log.flush()
        log.set_tags({Tag.OUTCOME: stop.reason, Tag.STOPPED: str(stop)})
        log.finish(Status.KILLED)
        return 0
    except Exception:
        if _TERMINATED:  # Terminated raised inside library code that turned it into another error (e.g. torch.save)
            return _killed(log)
        tb = traceback.format_exc()
        sys.stderr.write(tb)
        log.flush()
        log.log_text(tb, "traceback.txt")
        log.set_tags({Tag.OUTCOME: Outcome.FAILED})
        log.finish(Status.FAILED)
        return 1
    log.finish(Status.FINISHED)
    return 0


if __name__ == "__main__":
    sys.exit(main())
