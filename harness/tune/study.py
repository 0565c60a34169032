"""Optuna studies for a suite's `tune:` blocks (the driver; the worker side is harness.tune.trial).

One study per cell (harness.spec.tune.cells), stored in Optuna storage (a JournalStorage file
next to the MLflow store by default; any Optuna storage URL works).  Trials run through the same
pool and warm workers as ordinary runs, each a child run in MLflow tagged `harness.kind=trial` with
its study, number and state.  Trials are asked in waves of one per slot and the next wave is asked
only when a wave has ended, so a seeded study is reproducible for a given number of slots, whatever
the order in which trials finish.

A study resumes where it stopped: trials left RUNNING by a dead process are marked FAIL, and
only the missing finished (complete or pruned) trials are run.  The best params of each cell
are applied to the cell's runs (harness.spec.tune.tuned), recorded as `tuned.<path>` tags and
in the report."""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState
from rich.console import Console
from rich.markup import escape

from harness.backends import Job, Pool, Slot
from harness.jobs import TrackedJobs, job_for
from harness.session import Session
from harness.spec.errors import Loc
from harness.spec.load import LoadedSuite
from harness.spec.models import RunSpec
from harness.spec.tune import Cell, TuneScope, cells, trial_run, tuned
from harness.spec.tune_models import CategoricalParam, FloatParam, SamplerSpec, TuneSpec
from harness.spec.yamlio import KeyPath
from harness.store import StoreLayout
from harness.tags import Kind, Outcome, Status, Tag
from harness.track import Tracker
from harness.tune.trial import TrialRef, build_pruner, open_storage

SHOWN = 6  # a study of at most this many complete trials lists each one in the report and on the CLI
INTERRUPTED = "interrupted"  # user attr of a trial whose process died or was stopped: redone, not counted


def default_storage(tracking_uri: str) -> str:
    """A journal file next to a sqlite MLflow store; for a server store its shared database
    ($HARNESS_DATABASE_URL, RDB storage) if set, else a journal under ./.harness/."""
    return StoreLayout.from_uri(tracking_uri).optuna_storage


def build_sampler(spec: SamplerSpec) -> optuna.samplers.BaseSampler:
    if spec.name in ("random", "grid"):  # grid: every trial's params are enqueued (enqueue_grid), none is sampled
        return optuna.samplers.RandomSampler(seed=spec.seed)
    return optuna.samplers.TPESampler(seed=spec.seed, n_startup_trials=spec.startup_trials)


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


def show_params(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def _trial_id(trial: optuna.Trial | optuna.trial.FrozenTrial) -> int:
    """The storage id of a trial (Optuna has no public accessor; a worker needs it to report to the trial)."""
    return trial._trial_id


def _mark_interrupted(study: optuna.Study, trial: optuna.Trial | optuna.trial.FrozenTrial) -> None:
    optuna.trial.Trial(study, _trial_id(trial)).set_user_attr(INTERRUPTED, True)
    study.tell(trial.number, state=TrialState.FAIL)


@dataclass
class StudySummary:
    stage: str  # "" for the suite's own tune blocks
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
    values: list[float] = field(default_factory=list)  # objective of every complete trial
    points: list[tuple[dict[str, Any], float]] = field(default_factory=list)  # (params, objective) of the complete trials

    @property
    def flat(self) -> bool:
        """The complete trials do not separate: (nearly) the same objective in every one (e.g. 0.0 everywhere),
        so the 'best' params are an arbitrary pick."""
        return len(self.values) > 1 and max(self.values) - min(self.values) <= 1e-9 * max(1.0, abs(max(self.values)))

    @property
    def gap(self) -> float | None:
        """Best minus runner-up objective (in the study's direction): how far the choice is from the next trial."""
        if len(self.values) < 2 or self.best_value is None:
            return None
        rest = sorted(self.values, key=lambda v: abs(v - self.best_value))
        return abs(self.best_value - rest[1])

    def spread(self) -> str:
        """A short sweep (<= SHOWN complete trials) shows every trial as `params: value`, ordered by params; a longer
        study the range of its objective."""
        if len(self.points) <= SHOWN:
            return ", ".join(f"{show_params(p)}: {v:.4g}" for p, v in sorted(self.points, key=lambda pv: list(pv[0].values()))) or "–"
        return f"{min(self.values):.4g}..{max(self.values):.4g}"

    @property
    def used(self) -> int:
        """Trials that count toward `trials`: complete, pruned, and failed by the run itself."""
        return self.complete + self.pruned + self.failed - self.interrupted

    @property
    def done(self) -> bool:
        return self.used >= self.wanted and self.best_value is not None


def summarize(study: optuna.Study, block: TuneSpec, cell: Cell, scope: TuneScope | None = None) -> StudySummary:
    s = StudySummary(scope.stage if scope is not None and scope.at else "", block.name, cell.label, study.study_name, block.trials)
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.COMPLETE:
            s.complete += 1
            s.values.append(float(t.value))
            s.points.append((dict(t.params), float(t.value)))
        elif t.state == TrialState.PRUNED:
            s.pruned += 1
        elif t.state == TrialState.FAIL:
            s.failed += 1
            s.interrupted += bool(t.user_attrs.get(INTERRUPTED))
    if s.complete:
        s.best_value, s.best_params = study.best_value, dict(study.best_params)
    return s


def enqueue_grid(study: optuna.Study, block: TuneSpec, n: int) -> None:
    """Queue the next `n` grid points that no trial has covered (finished, failed by the run itself, or
    in flight); an interrupted trial's point is queued again."""
    covered = [t.params for t in study.get_trials(deepcopy=False)
               if t.state != TrialState.FAIL or not t.user_attrs.get(INTERRUPTED)]
    for point in [p for p in block.grid() if p not in covered][:n]:
        study.enqueue_trial(point)


def _study(block: TuneSpec, cell: Cell, prefix: str, storage: str) -> optuna.Study:
    study = optuna.create_study(
        study_name=cell.study_name(prefix), storage=open_storage(block.storage or storage),
        sampler=build_sampler(block.sampler), pruner=build_pruner(block.pruner),
        direction=block.direction, load_if_exists=True,
    )
    if study.metric_names != [block.objective]:  # optuna-dashboard shows the metric's name, not "Objective 0"
        study.set_metric_names([block.objective])
    return study


def _locate(loaded: LoadedSuite, scope: TuneScope, i: int, block: TuneSpec):
    """Where a tuned config's bad value came from: the `set` or `space` entry that wrote it, else the block."""
    def locate(path: KeyPath) -> Loc:
        dotted = ".".join(str(p) for p in path)
        for section in ("set", "space"):
            for key in getattr(block, section):
                if dotted == key or dotted.startswith(key + ".") or key.startswith(dotted + "."):
                    return loaded.locator.find(scope.at + ("tune", i, section, key))
        return loaded.locator.find(scope.at + ("tune", i))

    return locate


def suite_scope(loaded: LoadedSuite) -> TuneScope:
    """The suite's own tune blocks."""
    return TuneScope(loaded.spec.stage, tuple(loaded.spec.tune), (), tuple(loaded.spec.seeds))


def apply_studies(loaded: LoadedSuite, runs: list[RunSpec], storage: str,
                  scope: TuneScope | None = None) -> tuple[list[RunSpec], list[StudySummary]]:
    """The final runs given the studies as they stand (no trial is run): cells whose study is
    done get their best params; the others keep the suite's values."""
    scope = scope or suite_scope(loaded)
    summaries = []
    for i, block in enumerate(scope.blocks):
        for cell in cells(block, runs, list(scope.seeds)):
            s = summarize(_study(block, cell, scope.study_prefix(loaded.spec.name), storage), block, cell, scope)
            summaries.append(s)
            if s.done:
                runs = tuned(runs, cell, s.best_params, _locate(loaded, scope, i, block))
    return runs, summaries


def tune_suite(loaded: LoadedSuite, runs: list[RunSpec], tracker: Tracker, session: Session, pool: Pool, storage: str,
               console: Console | None = None, scope: TuneScope | None = None) -> tuple[list[RunSpec], list[StudySummary]]:
    """Run every study of `scope` (default: the suite's own tune blocks) to its trial count inside a suite
    session; return the tuned final runs.  Raises Interrupted on SIGINT / SIGTERM (the trials in flight
    are marked FAIL, interrupted)."""
    console = console or Console(stderr=True)
    scope = scope or suite_scope(loaded)
    summaries: list[StudySummary] = []
    with tempfile.TemporaryDirectory(prefix="harness-trials-") as tmp:
        trials = _Trials(loaded, tracker, session, pool, Path(tmp), storage, console)
        try:
            for i, block in enumerate(scope.blocks):
                for cell in cells(block, runs, list(scope.seeds)):
                    s = trials.run_study(scope, i, block, cell)
                    where = f"{scope.stage}/" if scope.at else ""
                    console.print(f"[bold]tune[/] {where}{block.name} {escape('[' + cell.label + ']')}: {s.complete} complete, "
                                  f"{s.pruned} pruned, {s.failed} failed; best {s.best_value} at {s.best_params}")
                    summaries.append(s)
                    if s.done:
                        runs = tuned(runs, cell, s.best_params, _locate(loaded, scope, i, block))
        except BaseException:
            trials.close(Status.KILLED)
            raise
        trials.close(Status.FINISHED)
    return runs, summaries


class _Trials:
    """Runs the trials of one `tune_suite` call: a tuning parent run (made when the first trial
    starts), waves of trials through the pool, each told to its study when its worker ends."""

    def __init__(self, loaded: LoadedSuite, tracker: Tracker, session: Session, pool: Pool, tmp: Path, storage: str,
                 console: Console) -> None:
        self.loaded, self.tracker, self.session, self.pool = loaded, tracker, session, pool
        self.tmp, self.storage, self.console = tmp, storage, console
        self.log_dir = session.store.log_dir(loaded.spec.name) / "tune"
        self.parent = ""

    def run_study(self, scope: TuneScope, i: int, block: TuneSpec, cell: Cell) -> StudySummary:
        study = _study(block, cell, scope.study_prefix(self.loaded.spec.name), self.storage)
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
            _mark_interrupted(study, t)  # left by a dead process: redone, not counted
        s = summarize(study, block, cell, scope)
        wave = len(self.pool.open())
        while s.used < block.trials:
            self._wave(study, scope, i, block, cell, min(wave, block.trials - s.used))
            s = summarize(study, block, cell, scope)
        if self.parent:
            cell_key = cell.label.replace("=", ":").replace(",", " ")  # MLflow tag names allow no '=' or ','
            self.tracker.set_tags(self.parent, {f"tune.{block.name}.best/{cell_key}": json.dumps(s.best_params)})
        return s

    def close(self, status: Status) -> None:
        if self.parent:
            self.tracker.terminate(self.parent, status)

    def _parent_run(self) -> str:
        if not self.parent:
            name = f"tune {self.loaded.spec.name} {time.strftime('%Y-%m-%d %H:%M:%S')}"
            self.parent = self.tracker.start_parent(self.session.experiment_id, name, {**self.session.tags, Tag.KIND: Kind.TUNE})
        return self.parent

    def _job(self, study: optuna.Study, block: TuneSpec, t: optuna.Trial, run: RunSpec) -> Job:
        ref = TrialRef(block.storage or self.storage, study.study_name, _trial_id(t), t.number, block.objective,
                       run.config.training.steps, block.pruner.model_dump(mode="json"))
        ref_path = ref.write(self.tmp / f"trial-{_trial_id(t)}.ref.json")
        log = self.log_dir / f"{study.study_name.replace('/', '_')}-{t.number}.log"
        return job_for(run, str(t.number), self.tmp, self.tracker.uri, log, "--trial", str(ref_path))

    def _wave(self, study: optuna.Study, scope: TuneScope, i: int, block: TuneSpec, cell: Cell, n: int) -> None:
        """Ask `n` trials, run them at once, tell each its outcome (the next wave sees them all)."""
        tracked = TrackedJobs(self.tracker, self.session.experiment_id, self._parent_run())
        if block.sampler.name == "grid":
            enqueue_grid(study, block, n)
        trials = {str(t.number): t for t in (study.ask(distributions(block)) for _ in range(n))}
        locate = _locate(self.loaded, scope, i, block)
        runs = {k: trial_run(cell, t.params, locate, list(scope.seeds)) for k, t in trials.items()}

        def on_start(job: Job, slot: Slot) -> list[str]:
            t, run = trials[job.key], runs[job.key]
            tags = {**self.session.tags, Tag.KIND: Kind.TRIAL, Tag.RUN_ID: run.run_id, Tag.TRIAL_STUDY: study.study_name,
                    Tag.TRIAL_NUMBER: str(t.number), Tag.TRIAL_STATE: TrialState.RUNNING.name, Tag.SLOT: str(slot.index),
                    **{f"{Tag.TRIAL_PARAM}{k}": str(v) for k, v in t.params.items()}}
            name = f"trial {t.number} {block.name} [{cell.label}] {show_params({k.split('.')[-1]: v for k, v in t.params.items()})}"
            return tracked.start(job, name, tags)

        def on_end(job: Job, rc: int) -> None:
            t = trials[job.key]
            status, outcome = tracked.end(job, rc)
            value = self.tracker.final_metrics(tracked.mlflow_ids[job.key]).get(block.objective) if status == Status.FINISHED else None
            if status == Status.FINISHED and value is not None:
                study.tell(t, value)
            elif outcome == Outcome.PRUNED:
                study.tell(t, state=TrialState.PRUNED)
            else:
                study.tell(t, state=TrialState.FAIL)
            frozen = study.trials[t.number]
            self.tracker.set_tags(tracked.mlflow_ids[job.key], {Tag.TRIAL_STATE: frozen.state.name})
            done = sum(x.state in (TrialState.COMPLETE, TrialState.PRUNED) for x in study.get_trials(deepcopy=False))
            value_text = f" -> {block.objective} {frozen.value:.4g}" if frozen.value is not None else ""
            self.console.print(f"tune {block.name} {escape('[' + cell.label + ']')} trial {done}/{block.trials}: "
                               f"{show_params(t.params)}{value_text} ({frozen.state.name})", highlight=False)

        try:
            self.pool.run([self._job(study, block, t, runs[k]) for k, t in trials.items()], on_start, on_end)
        except BaseException:
            tracked.close_open()
            for job in self.pool.interrupted:
                _mark_interrupted(study, trials[job.key])
            raise
