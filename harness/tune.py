"""Optuna studies for a suite's `tune:` blocks.

One study per cell (harness.spec.tune.cells), stored in Optuna storage (a JournalStorage file
next to the MLflow store by default; any Optuna storage URL works).  Trials run through the same
scheduler slots and worker processes as ordinary runs, each a child run in MLflow tagged
`harness.kind=trial` with its study, number and state.  Trials are asked in waves of one per slot
and the next wave is asked only when a wave has ended, so a seeded study is reproducible for a
given number of slots, whatever the order in which trials finish.  Inside
the worker, `ReportToTrial` feeds every evaluation of the objective to the study's pruner.

A study resumes where it stopped: trials left RUNNING by a dead process are marked FAIL, and
only the missing finished (complete or pruned) trials are run.  The best params of each cell
are applied to the cell's runs (harness.spec.tune.tuned), recorded as `tuned.<path>` tags and
in the report."""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from rich.console import Console
from rich.markup import escape

from harness.spec.load import LoadedSuite
from harness.spec.models import RunSpec
from harness.spec.tune import Cell, cells, trial_run, tuned
from harness.spec.tune_models import CategoricalParam, FloatParam, PrunerSpec, SamplerSpec, TuneSpec
from harness.track import KIND_TAG
from harness.train.callbacks import StopRun

optuna.logging.set_verbosity(optuna.logging.WARNING)
JOURNAL_NAME = "optuna-journal.log"


# ---------------------------------------------------------------- storage, sampler, pruner
def default_storage(tracking_uri: str) -> str:
    """A journal file next to a sqlite MLflow store, else under ./.harness/."""
    if tracking_uri.startswith("sqlite:///"):
        return str(Path(tracking_uri.removeprefix("sqlite:///")).resolve().parent / JOURNAL_NAME)
    return str((Path(".harness") / JOURNAL_NAME).resolve())


def open_storage(storage: str) -> Any:
    """A URL (`sqlite:///...`, `postgresql://...`) goes to Optuna as is; a path is a journal file."""
    if "://" in storage:
        return storage
    Path(storage).parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(storage))


def build_sampler(spec: SamplerSpec) -> optuna.samplers.BaseSampler:
    if spec.name == "random":
        return optuna.samplers.RandomSampler(seed=spec.seed)
    return optuna.samplers.TPESampler(seed=spec.seed, n_startup_trials=spec.startup_trials)


def build_pruner(spec: PrunerSpec) -> optuna.pruners.BasePruner:
    if spec.name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=spec.startup_trials, n_warmup_steps=spec.warmup_steps)
    if spec.name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=spec.min_resource, reduction_factor=spec.reduction_factor)
    return optuna.pruners.NopPruner()


def distributions(block: TuneSpec) -> dict[str, BaseDistribution]:
    out: dict[str, BaseDistribution] = {}
    for path, p in block.space.items():
        if isinstance(p, CategoricalParam):
            out[path] = CategoricalDistribution(p.choices)
        elif isinstance(p, FloatParam):
            out[path] = FloatDistribution(p.low, p.high, log=p.log, step=p.step)
        else:
            out[path] = IntDistribution(p.low, p.high, log=p.log, step=p.step)
    return out


# ---------------------------------------------------------------- worker side
class TrialPruned(StopRun):
    reason = "pruned"


@dataclass(frozen=True)
class TrialRef:
    """What a worker needs to report to its trial (written as JSON, passed by `--trial`)."""

    storage: str
    study: str
    trial_id: int
    number: int
    objective: str
    last_step: int
    pruner: dict[str, Any]

    def write(self, path: Path) -> Path:
        path.write_text(json.dumps(asdict(self)))
        return path

    @classmethod
    def read(cls, path: Path) -> "TrialRef":
        return cls(**json.loads(path.read_text()))


class ReportToTrial:
    """Loop callback: every evaluation's objective goes to the trial; raises TrialPruned when
    the pruner says so (never at the last step: a trial that got there is complete)."""

    def __init__(self, ref: TrialRef) -> None:
        pruner = build_pruner(PrunerSpec.model_validate(ref.pruner))
        study = optuna.load_study(study_name=ref.study, storage=open_storage(ref.storage), pruner=pruner)
        self.trial = optuna.trial.Trial(study, ref.trial_id)
        self.ref = ref

    def on_step(self, step: int, scalars: dict[str, float]) -> None:
        pass

    def on_eval(self, step: int, metrics: dict[str, float]) -> None:
        if self.ref.objective not in metrics:
            raise KeyError(f"objective '{self.ref.objective}' is not among the evaluation metrics: {sorted(metrics)}")
        self.trial.report(metrics[self.ref.objective], step)
        if step < self.ref.last_step and self.trial.should_prune():
            raise TrialPruned(f"pruned at step {step}")


# ---------------------------------------------------------------- parent side
def _interrupted(study: optuna.Study, trial_id: int) -> None:
    optuna.trial.Trial(study, trial_id).set_user_attr("interrupted", True)


@dataclass
class StudySummary:
    block: str
    cell: str
    study: str
    wanted: int
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    interrupted: int = 0  # failed because the process running them died or was stopped; not counted
    best_value: float | None = None
    best_params: dict[str, Any] = field(default_factory=dict)

    @property
    def used(self) -> int:
        """Trials that count toward `trials`: complete, pruned, and failed by the run itself."""
        return self.complete + self.pruned + self.failed - self.interrupted

    @property
    def done(self) -> bool:
        return self.used >= self.wanted and self.best_value is not None


def summarize(study: optuna.Study, block: TuneSpec, cell: Cell) -> StudySummary:
    s = StudySummary(block.name, cell.label, study.study_name, block.trials)
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.COMPLETE:
            s.complete += 1
        elif t.state == TrialState.PRUNED:
            s.pruned += 1
        elif t.state == TrialState.FAIL:
            s.failed += 1
            s.interrupted += bool(t.user_attrs.get("interrupted"))
    if s.complete:
        s.best_value, s.best_params = study.best_value, dict(study.best_params)
    return s


def _study(block: TuneSpec, cell: Cell, suite: str, storage: str) -> optuna.Study:
    return optuna.create_study(
        study_name=cell.study_name(suite), storage=open_storage(block.storage or storage),
        sampler=build_sampler(block.sampler), pruner=build_pruner(block.pruner),
        direction=block.direction, load_if_exists=True,
    )


def _locate(loaded: LoadedSuite, i: int):
    return lambda path: loaded.locator.find(("tune", i, "space"))


def apply_studies(loaded: LoadedSuite, runs: list[RunSpec], storage: str) -> tuple[list[RunSpec], list[StudySummary]]:
    """The final runs given the studies as they stand (no trial is run): cells whose study is
    done get their best params; the others keep the suite's values."""
    summaries = []
    for i, block in enumerate(loaded.spec.tune):
        for cell in cells(block, runs, loaded.spec.seeds):
            s = summarize(_study(block, cell, loaded.spec.name, storage), block, cell)
            summaries.append(s)
            if s.done:
                runs = tuned(runs, cell, s.best_params, _locate(loaded, i))
    return runs, summaries


def tune_suite(
    loaded: LoadedSuite, runs: list[RunSpec], tracker, storage: str, workers: int | None = None,
    console: Console | None = None, log_dir: Path | None = None,
) -> tuple[list[RunSpec], list[StudySummary]]:
    """Run every study of the suite to its trial count; return the tuned final runs.  Holds the
    suite's lock (like run_suite) and raises Interrupted on SIGINT / SIGTERM."""
    from harness.orchestrate import suite_session

    console = console or Console(stderr=True)
    with suite_session(loaded.spec.name, tracker, console) as (state, exp_id):
        return _tune_locked(loaded, runs, tracker, exp_id, storage, workers, console, log_dir or state / "logs" / loaded.spec.name / "tune")


def _tune_locked(loaded: LoadedSuite, runs: list[RunSpec], tracker, exp_id: str, storage: str, workers: int | None,
                 console: Console, log_dir: Path) -> tuple[list[RunSpec], list[StudySummary]]:
    from harness.backends import make_pool
    from harness.sched import make_slots, visible_gpus

    spec = loaded.spec
    slots = make_slots(workers or spec.scheduler.workers, spec.scheduler.slots_per_gpu, visible_gpus())
    pool = make_pool(spec.scheduler.backend, slots, spec.scheduler, workers)  # the same backend as the suite's runs
    summaries: list[StudySummary] = []
    with tempfile.TemporaryDirectory(prefix="harness-trials-") as tmp:
        trials = _Trials(loaded, tracker, exp_id, pool, len(slots), Path(tmp), log_dir, storage)
        try:
            for i, block in enumerate(spec.tune):
                for cell in cells(block, runs, spec.seeds):
                    s = trials.run_study(i, block, cell)
                    console.print(f"[bold]tune[/] {block.name} {escape('[' + cell.label + ']')}: {s.complete} complete, "
                                  f"{s.pruned} pruned, {s.failed} failed; best {s.best_value} at {s.best_params}")
                    summaries.append(s)
                    if s.done:
                        runs = tuned(runs, cell, s.best_params, _locate(loaded, i))
        except BaseException:
            trials.close("KILLED")
            raise
        finally:
            pool.close()
        trials.close("FINISHED")
    return runs, summaries


def _show_params(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


class _Trials:
    """Runs the trials of one `tune_suite` call: a tuning parent run (made when the first trial
    starts), waves of trials through the pool, each told to its study when its worker ends."""

    def __init__(self, loaded: LoadedSuite, tracker, exp_id: str, pool, wave: int, tmp: Path, log_dir: Path, storage: str) -> None:
        from harness.orchestrate import suite_tags

        self.loaded, self.tracker, self.exp_id, self.pool, self.wave = loaded, tracker, exp_id, pool, wave
        self.tmp, self.log_dir, self.storage = tmp, log_dir, storage
        self.base_tags = suite_tags(loaded.spec.name)
        self.parent = ""

    def run_study(self, i: int, block: TuneSpec, cell: Cell) -> StudySummary:
        study = _study(block, cell, self.loaded.spec.name, self.storage)
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
            _interrupted(study, t._trial_id)  # left by a dead process: redone, not counted
            study.tell(t.number, state=TrialState.FAIL)
        s = summarize(study, block, cell)
        while s.used < block.trials:
            self._wave(study, i, block, cell, min(self.wave, block.trials - s.used))
            s = summarize(study, block, cell)
        if self.parent:
            cell_key = cell.label.replace("=", ":").replace(",", " ")  # MLflow tag names allow no '=' or ','
            self.tracker.set_tags(self.parent, {f"tune.{block.name}.best/{cell_key}": json.dumps(s.best_params)})
        return s

    def close(self, status: str) -> None:
        if self.parent:
            self.tracker.terminate(self.parent, status)

    def _parent_run(self) -> str:
        if not self.parent:
            name = f"tune {self.loaded.spec.name} {time.strftime('%Y-%m-%d %H:%M:%S')}"
            self.parent = self.tracker.start_parent(self.exp_id, name, {**self.base_tags, KIND_TAG: "tune"})
        return self.parent

    def _job(self, study: optuna.Study, block: TuneSpec, cell: Cell, t: optuna.Trial, run: RunSpec):
        from harness.sched import Job
        from harness.worker import worker_command

        ref = TrialRef(block.storage or self.storage, study.study_name, t._trial_id, t.number, block.objective,
                       run.config.training.steps, block.pruner.model_dump(mode="json"))
        ref_path = ref.write(self.tmp / f"trial-{t._trial_id}.ref.json")
        argv = worker_command(run, self.tmp, self.tracker.uri, "--trial", str(ref_path))
        return Job(str(t.number), argv, self.log_dir / f"{study.study_name.replace('/', '_')}-{t.number}.log")

    def _wave(self, study: optuna.Study, i: int, block: TuneSpec, cell: Cell, n: int) -> None:
        """Ask `n` trials, run them at once, tell each its outcome (the next wave sees them all)."""
        from harness.orchestrate import record_death

        tracker, parent = self.tracker, self._parent_run()
        trials = {str(t.number): t for t in (study.ask(distributions(block)) for _ in range(n))}
        runs = {k: trial_run(cell, t.params, _locate(self.loaded, i), self.loaded.spec.seeds) for k, t in trials.items()}
        mlflow_ids: dict[str, str] = {}

        def on_start(job, slot) -> list[str]:
            t, run = trials[job.key], runs[job.key]
            tags = {**self.base_tags, KIND_TAG: "trial", "run_id": run.run_id, "trial.study": study.study_name,
                    "trial.number": str(t.number), "trial.state": "RUNNING", "slot": str(slot.index),
                    **{f"trial.param.{k}": str(v) for k, v in t.params.items()}}
            name = f"trial {t.number} {block.name} [{cell.label}] {_show_params({k.split('.')[-1]: v for k, v in t.params.items()})}"
            mlflow_ids[job.key] = tracker.create_child(self.exp_id, parent, name, tags)
            return ["--mlflow-id", mlflow_ids[job.key]]

        def on_end(job, rc: int) -> None:
            t, mid = trials[job.key], mlflow_ids[job.key]
            status, outcome = record_death(tracker, mid, rc, job.log_path)
            value = tracker.client.get_run(mid).data.metrics.get(block.objective) if status == "FINISHED" else None
            if status == "FINISHED" and value is not None:
                study.tell(t, value)
            elif outcome == "pruned":
                study.tell(t, state=TrialState.PRUNED)
            else:
                study.tell(t, state=TrialState.FAIL)
            tracker.set_tags(mid, {"trial.state": study.trials[t.number].state.name})

        try:
            self.pool.run([self._job(study, block, cell, t, runs[k]) for k, t in trials.items()], on_start, on_end)
        except BaseException:
            for job in self.pool.interrupted:
                if job.key in mlflow_ids:
                    tracker.terminate(mlflow_ids[job.key], "KILLED")
                _interrupted(study, trials[job.key]._trial_id)
                study.tell(trials[job.key], state=TrialState.FAIL)
            raise


def tuning_section(summaries: list[StudySummary]):
    """The report's table of studies: one row per cell, best params and value."""
    from harness.report import Section

    rows = []
    for s in summaries:
        params = _show_params(s.best_params)
        best = "–" if s.best_value is None else f"{s.best_value:.4g}"
        rows.append([s.block, s.cell, f"{s.complete} / {s.pruned} / {s.failed - s.interrupted}", best, params or "–", s.study])
    note = ("Trials per cell: complete / pruned / failed (trials interrupted by a stopped orchestrator are redone and not "
            "counted). The final runs of each cell use its best params (MLflow tags `tuned.<path>`).")
    return Section("Tuning: best params per cell", ["block", "cell", "trials", "best value", "best params", "study"], rows, note)

