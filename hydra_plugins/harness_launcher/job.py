"""One Hydra job on a harness slot: `python -m hydra_plugins.harness_launcher.job PAYLOAD --result FILE --uri URI
--mlflow-id ID [--attempt N]`.  PAYLOAD is what the launcher handed over (cloudpickle, as Hydra's joblib
launcher hands its jobs over: the task function, the job's composed config, Hydra's context and singletons),
written by the launcher into a private temp folder.  The job runs Hydra's own `run_job` (job dir, `.hydra/`,
logging as Hydra does them), logs its overrides as params and a numeric return value as `return_value` to its
MLflow child run and ends it FINISHED, or FAILED with the traceback; on SIGTERM it ends it KILLED and exits
143.  Like a harness worker it dies with the launcher (PR_SET_PDEATHSIG)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import traceback
from pathlib import Path

import cloudpickle
from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobStatus, filter_overrides, run_job, setup_globals

from harness.backends.base import PARENT_PID_ENV
from harness.tags import Outcome, Status, Tag
from harness.worker import EXIT_TERMINATED, Terminated, die_with_parent

RETURN_VALUE = "return_value"


def _on_sigterm(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="hydra_plugins.harness_launcher.job")
    ap.add_argument("payload", type=Path)
    ap.add_argument("--result", type=Path, required=True)
    ap.add_argument("--uri", required=True)
    ap.add_argument("--mlflow-id", required=True)
    ap.add_argument("--attempt", type=int, default=0)
    ap.add_argument("--app-dir", default=None, help="the app's folder: its own modules import from there, as in the app")
    args = ap.parse_args(argv)
    if args.app_dir:
        sys.path.insert(0, args.app_dir)
    signal.signal(signal.SIGTERM, _on_sigterm)
    from harness.track import RunLog

    log = RunLog(args.uri, args.mlflow_id)
    try:
        parent = os.environ.get(PARENT_PID_ENV)
        if parent is not None and not die_with_parent(int(parent)):
            raise Terminated("the launcher died before this job started")
        payload = cloudpickle.loads(args.payload.read_bytes())
        setup_globals()
        Singleton.set_state(payload["singletons"])
        config = payload["config"]
        HydraConfig.instance().set_config(config)
        overrides = filter_overrides(list(config.hydra.overrides.task))
        log.log_params(dict(o.split("=", 1) for o in overrides if "=" in o))
        ret = run_job(hydra_context=payload["hydra_context"], task_function=payload["task_function"], config=config,
                      job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")
    except Terminated:
        log.flush()
        log.set_tags({Tag.OUTCOME: Outcome.KILLED})
        log.finish(Status.KILLED)
        return EXIT_TERMINATED
    tmp = args.result.with_suffix(".tmp")
    tmp.write_bytes(cloudpickle.dumps(ret))
    tmp.replace(args.result)
    log.set_tags({Tag.HYDRA_JOB_DIR: str(ret.hydra_cfg.hydra.runtime.output_dir)})  # where Hydra put its outputs
    if ret.status == JobStatus.COMPLETED:
        value = ret._return_value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            log.log_metrics({RETURN_VALUE: float(value)}, 0)
        log.set_tags({Tag.OUTCOME: Outcome.FINISHED})
        log.finish(Status.FINISHED)
        return 0
    error = ret._return_value
    log.log_text("".join(traceback.format_exception(error)) if isinstance(error, BaseException) else str(error), "traceback.txt")
    log.set_tags({Tag.OUTCOME: Outcome.FAILED})
    log.finish(Status.FAILED)
    return 1


if __name__ == "__main__":
    sys.exit(main())
