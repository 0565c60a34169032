"""The vocabulary of the tracking store: run statuses, outcomes, kinds and tag keys.

Every writer (orchestrator, tuning, worker, runner) and every reader (tracker, report, resume) names
these through this module, so that the contract between them lives in one place.

    status   MLflow's run status: RUNNING while a worker trains, then FINISHED / FAILED / KILLED
    outcome  why a run ended (tag `outcome`): finished or diverged (FINISHED), failed (FAILED),
             killed / orphaned / pruned (KILLED)
    kind     tag `harness.kind` on runs that are not results: invocation parents, tuning trials, their
             parent, a report holder
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"


TERMINAL = frozenset({Status.FINISHED, Status.FAILED, Status.KILLED})


class Outcome(StrEnum):
    FINISHED = "finished"  # trained to the last step
    DIVERGED = "diverged"  # a NaN / inf loss ended training (status FINISHED: a result, not a crash)
    FAILED = "failed"  # an exception, or a worker that died without saying why
    KILLED = "killed"  # SIGTERM reached the worker (Ctrl-C, a stopped pool, the orchestrator's death)
    ORPHANED = "orphaned"  # left RUNNING by a dead orchestrator, closed by the next one
    PRUNED = "pruned"  # a tuning trial stopped by its study's pruner
    SKIPPED = "skipped"  # a stage run whose source run failed: never started (status KILLED)


class Kind(StrEnum):
    INVOCATION = "invocation"  # the parent run of one `harness run` invocation (its runs are children)
    TRIAL = "trial"  # a tuning trial: a child run that is not a result
    TUNE = "tune"  # the parent of an invocation's trials
    REPORT = "report"  # a parent made only to hold a report's artifacts


class Tag:
    """Tag keys.  Prefixed families: `label.<axis>`, `tuned.<path>`, `trial.param.<path>`, `versions.<pkg>`."""

    RUN_ID = "run_id"  # the RunSpec's content hash (MLflow's own id is `mlflow_id` in this code)
    SUITE = "suite"
    ABLATION = "ablation"  # the ablation's name; BASE_ABLATION for the suite's own runs
    CELL = "cell"  # the run without its seed (RunSpec.cell): Group by cell in the MLflow UI = the report's rows
    OUTCOME = "outcome"
    ATTEMPT = "attempt"
    SLOT = "slot"
    EXIT_CODE = "exit_code"
    KIND = "harness.kind"
    PARENT = "mlflow.parentRunId"
    GIT_SHA = "git_sha"  # the harness checkout's commit (harness.provenance)
    GIT_DIRTY = "git_dirty"  # "true": uncommitted changes, their diff in the artifact DIFF_ARTIFACT
    CODE_FINGERPRINT = "code_fingerprint"  # hash of the source a run's result depends on (harness.provenance.code_fingerprint)
    LOCK_SHA = "lock_sha256"  # of requirements.lock
    SOURCE_NAME = "mlflow.source.name"  # MLflow's standard tags (the UI's Source and User columns)
    SOURCE_TYPE = "mlflow.source.type"
    SOURCE_COMMIT = "mlflow.source.git.commit"
    USER = "mlflow.user"
    DEVICE = "device"
    N_PARAMS = "n_params"
    RESUMED_FROM = "resumed_from_step"
    CHECKPOINT_STEP = "checkpoint_step"  # a server store's attempt holding a resume checkpoint (artifact resume/)
    NODE = "node"  # where the worker ran: host, and the Ray node or SLURM job
    SLURM_JOB = "slurm.job_id"
    REQUEUED = "requeued"  # times a SLURM job was requeued and resumed in place
    TRACKING_SECONDS = "tracking_seconds"  # wall time a worker spent in tracking calls
    STOPPED = "stopped"  # why a run was stopped on purpose (a callback's StopRun message)
    COMMAND = "command"
    N_RUNS = "n_runs"
    ORCHESTRATOR_PID = "orchestrator.pid"
    STAGE = "stage"
    SOURCE_RUN_ID = "source.run_id"  # a stage run's source (its run_id; its MLflow run in SOURCE_MLFLOW_ID)
    SOURCE_MLFLOW_ID = "source.mlflow_id"
    SKIPPED_BECAUSE = "skipped_because"
    NOTE = "mlflow.note.content"  # the run's (or experiment's) description in the MLflow UI
    TRIAL_STUDY = "trial.study"
    TRIAL_NUMBER = "trial.number"
    TRIAL_STATE = "trial.state"
    LABEL = "label."
    TUNED = "tuned."
    TRIAL_PARAM = "trial.param."
    VERSIONS = "versions."
    HYDRA_OVERRIDES = "hydra.overrides"  # a Hydra job's overrides (hydra_plugins.harness_launcher)
    HYDRA_JOB_DIR = "hydra.job_dir"  # where Hydra put the job's outputs
    HYDRA_JOB_NUM = "hydra.job_num"
    CLAIM = "claim."  # on an invocation's parent: claim.<id> = its verdict, claim.<id>.measured
    SHARED_VIEW = "mlflow.sharedViewState."  # + key, on an experiment: a runs-page view the UI opens with ?viewStateShareKey=key


CELLS_VIEW = "harness-cells"  # the shared view of a suite's runs grouped by cell (the report's rows)
BASE_ABLATION = "none"  # tag `ablation` of a suite's own runs (not an ablation), so Group by ablation keeps them apart
DIFF_ARTIFACT = "code/uncommitted.diff"
