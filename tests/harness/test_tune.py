"""Tuning: spec validation, cells and tuned runs, the worker-side pruning callback, and the real
CLI (studies in a journal file, trials as scheduled child runs, resume after SIGKILL)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from conftest import child_runs, cli
from optuna.trial import TrialState

from harness.spec import SpecError, expand, load_suite
from harness.spec.tune import cells, trial_run, tuned
from harness.store import JOURNAL_NAME
from harness.tune.study import INTERRUPTED, apply_studies, build_sampler, distributions, enqueue_grid, summarize
from harness.tune.trial import ReportToTrial, TrialPruned, TrialRef, open_storage

TUNE_BLOCK = """
tune:
  - name: lr
    per: [model.pos_emb]
    space:
{space}
    objective: token_acc/len_03
    trials: 2
"""
SUITE = str(Path(__file__).resolve().parents[2] / "suites" / "smoke_tune.yaml")
LR = "      optimizer.lr: {type: float, low: 1.0e-4, high: 3.0e-2, log: true}"


def _suite(tmp_path: Path, root: Path, space: str = LR, extra: str = "") -> Path:
    shutil.copy(root / "suites" / "smoke.yaml", tmp_path / "smoke.yaml")
    p = tmp_path / "t.yaml"
    p.write_text("include: smoke.yaml\nname: t\n" + TUNE_BLOCK.format(space=space) + extra)
    return p


def _expand(path: Path):
    loaded = load_suite(path)
    return loaded, expand(loaded)


# ---------------------------------------------------------------- spec
@pytest.mark.parametrize(
    "space, line, message",
    [
        ("      optimizer.lrate: {type: float, low: 0.1, high: 0.2}", 8, "unknown key 'lrate'; did you mean 'lr'?"),
        ("      optimizer.lr: {type: float, low: -1.0, high: 0.2, log: true}", 8, "log-scale range needs low > 0"),
        ("      optimizer.lr: {type: float, low: 0.2, high: 0.1}", 8, "'low' must be below 'high'"),
        ("      optimizer.lr: {type: gaussian, low: 0.1, high: 0.2}", 8, "does not match any of the expected tags"),
        ("      optimizer.lr: {type: categorical, choices: [0.1, -1.0]}", 8, "greater than 0"),
        ("      model.n_heads: {type: int, low: 1, high: 3}", 8, "n_heads"),  # d_model 32 is not divisible by 3
        ("      lr: {type: float, low: 0.1, high: 0.2}", 8, "must start with one of"),
    ],
)
def test_bad_space_is_a_spec_error_at_its_line(tmp_path, root, space, line, message):
    with pytest.raises(SpecError) as e:
        _expand(_suite(tmp_path, root, space))
    assert e.value.loc.file.endswith("t.yaml") and e.value.loc.line == line
    assert message in str(e.value) and "\n" not in str(e.value)


def test_block_errors_name_their_key(tmp_path, root):
    second = "  - name: NAME\n    per: [PER]\n    space:\n" + LR + "\n    objective: x\n    trials: 1\n"
    with pytest.raises(SpecError, match="matches no run"):
        _expand(_suite(tmp_path, root, extra="    where: {model.pos_emb: rope}\n"))
    with pytest.raises(SpecError, match="'model.posemb' is not a config path of any run"):
        _expand(_suite(tmp_path, root, extra=second.replace("NAME", "lr2").replace("PER", "model.posemb")))
    with pytest.raises(SpecError, match="duplicate tune block name 'lr'"):
        _expand(_suite(tmp_path, root, extra=second.replace("NAME", "lr").replace("PER", "model.pos_emb")))
    with pytest.raises(SpecError, match="unknown key 'trails'"):
        _expand(_suite(tmp_path, root, extra="    trails: 3\n"))


def test_cells_trials_and_tuned_runs(root):
    loaded, runs = _expand(root / "suites" / "smoke_tune.yaml")
    block = loaded.spec.tune[0]
    found = cells(block, runs, loaded.spec.seeds)
    assert [c.key for c in found] == [{"model.pos_emb": "abs"}, {"model.pos_emb": "rel_k"}]
    assert all(len(c.runs) == 2 and c.base.config.seed == 0 for c in found)
    assert len({c.study_name("smoke_tune") for c in found}) == 2

    locate = lambda path: loaded.locator.find(("tune", 0))  # noqa: E731
    trial = trial_run(found[0], {"optimizer.lr": 0.0123}, locate, loaded.spec.seeds)
    assert trial.config.optimizer.lr == 0.0123 and trial.config.model.pos_emb == "abs" and trial.config.seed == 0

    final = tuned(runs, found[0], {"optimizer.lr": 0.0123}, locate)
    changed = [r for r in final if r.run_id not in {q.run_id for q in runs}]
    assert len(changed) == 2 and all(r.config.optimizer.lr == 0.0123 and r.tuned == {"optimizer.lr": 0.0123} for r in changed)
    assert sorted(r.config.seed for r in changed) == [0, 1] and all(r.config.model.pos_emb == "abs" for r in changed)
    untouched = [r for r in final if r.config.model.pos_emb == "rel_k"]
    assert {r.run_id for r in untouched} <= {q.run_id for q in runs}


def test_study_name_changes_with_what_a_trial_depends_on(tmp_path, root):
    def first_cell(path: Path):
        loaded, runs = _expand(path)
        return cells(loaded.spec.tune[0], runs, loaded.spec.seeds)[0].study_name("t")

    a = first_cell(_suite(tmp_path, root))
    assert first_cell(_suite(tmp_path, root)) == a  # same suite: the study resumes
    assert first_cell(_suite(tmp_path, root, LR.replace("3.0e-2", "1.0e-2"))) != a  # another space
    assert first_cell(_suite(tmp_path, root, extra="    set: {training.steps: 20}\n")) != a  # another trial config
    assert first_cell(_suite(tmp_path, root, extra="    sampler: {seed: 1}\n")) != a


def test_distributions_follow_the_space(root):
    loaded, _ = _expand(root / "suites" / "smoke_tune.yaml")
    (path, dist), = distributions(loaded.spec.tune[0]).items()
    assert path == "optimizer.lr" and isinstance(dist, optuna.distributions.FloatDistribution) and dist.log


GRID = ("      optimizer.lr: {type: categorical, choices: [1.0e-3, 3.0e-3, 1.0e-2]}\n"
        "      model.n_layers: {type: int, low: 1, high: 2}")


def test_a_grid_block_lists_its_points_and_must_ask_for_each_once(tmp_path, root):
    with pytest.raises(SpecError, match="the grid has 6 points; set trials: 6") as e:
        _expand(_suite(tmp_path, root, GRID, "    sampler: {name: grid}\n"))  # trials: 2
    assert e.value.loc.file.endswith("t.yaml") and "\n" not in str(e.value)
    with pytest.raises(SpecError, match="'optimizer.lr' is a float range"):
        _expand(_suite(tmp_path, root, LR, "    sampler: {name: grid}\n"))
    path = _suite(tmp_path, root, GRID, "    sampler: {name: grid}\n")
    path.write_text(path.read_text().replace("trials: 2", "trials: 6"))
    loaded, runs = _expand(path)
    block = loaded.spec.tune[0]
    assert block.grid() == [{"optimizer.lr": lr, "model.n_layers": n} for lr in (1e-3, 3e-3, 1e-2) for n in (1, 2)]
    assert len(cells(block, runs, loaded.spec.seeds)) == 2


def test_enqueue_grid_covers_every_point_once_and_redoes_an_interrupted_one(tmp_path, root):
    path = _suite(tmp_path, root, GRID.splitlines()[0], "    sampler: {name: grid}\n")
    path.write_text(path.read_text().replace("trials: 2", "trials: 3"))
    block = load_suite(path).spec.tune[0]
    study = optuna.create_study(sampler=build_sampler(block.sampler), direction="maximize")

    def wave(n: int) -> list[optuna.Trial]:
        enqueue_grid(study, block, n)
        return [study.ask(distributions(block)) for _ in range(n)]

    first = wave(2)
    assert [t.params for t in first] == [{"optimizer.lr": 1e-3}, {"optimizer.lr": 3e-3}]
    study.tell(first[0], 1.0)
    first[1].set_user_attr(INTERRUPTED, True)  # its worker was killed: not counted, its point is asked again
    study.tell(first[1], state=TrialState.FAIL)
    second = wave(2)
    assert [t.params for t in second] == [{"optimizer.lr": 3e-3}, {"optimizer.lr": 1e-2}]
    study.tell(second[0], state=TrialState.PRUNED)
    study.tell(second[1], 0.5)
    enqueue_grid(study, block, 2)
    assert not study.get_trials(states=(TrialState.WAITING,))  # every point is covered: nothing is queued
    assert study.best_params == {"optimizer.lr": 1e-3}
    loaded = load_suite(path)
    s = summarize(study, block, cells(block, expand(loaded), loaded.spec.seeds)[0])
    assert (s.complete, s.pruned, s.interrupted, s.used, s.done) == (2, 1, 1, 3, True)
    assert s.spread() == "optimizer.lr=0.001: 1, optimizer.lr=0.01: 0.5"  # a short sweep lists each complete trial


# ---------------------------------------------------------------- worker side: pruning
def test_report_to_trial_prunes_a_bad_trial_but_never_at_the_last_step(tmp_path):
    storage = str(tmp_path / JOURNAL_NAME)
    pruner = {"name": "median", "startup_trials": 1, "warmup_steps": 0, "min_resource": 1, "reduction_factor": 3}
    study = optuna.create_study(study_name="s", storage=open_storage(storage), direction="maximize")
    good = study.ask()
    for step in (10, 20, 30):
        good.report(0.9, step)
    study.tell(good, 0.9)

    def ref(trial) -> TrialRef:
        return TrialRef(storage, "s", trial._trial_id, trial.number, "acc", 30, pruner)

    bad = study.ask()
    cb = ReportToTrial(ref(bad))
    with pytest.raises(TrialPruned):
        cb.on_eval(10, {"acc": 0.1})
    late = study.ask()
    ReportToTrial(ref(late)).on_eval(30, {"acc": 0.1})  # the last step: complete, not pruned
    with pytest.raises(KeyError, match="objective 'acc' is not among"):
        ReportToTrial(ref(late)).on_eval(10, {"loss": 1.0})


# ---------------------------------------------------------------- end to end
def _studies(cwd: Path) -> list[optuna.Study]:
    storage = open_storage(str(cwd / JOURNAL_NAME))
    return [optuna.load_study(study_name=s.study_name, storage=storage) for s in optuna.get_all_study_summaries(storage)]


@pytest.mark.slow
def test_tune_then_run_applies_the_best_params(root, tmp_path):
    r = cli(root, tmp_path, "tune", SUITE, "--workers", "2")
    assert r.returncode == 0, r.stderr
    assert "tune lr [model.pos_emb=rel_k] trial 4/4: " in r.stderr  # progress: a line per trial as it ends
    studies = _studies(tmp_path)
    assert len(studies) == 2
    states = [t.state for s in studies for t in s.trials]
    assert len(states) == 8 and TrialState.PRUNED in states, states  # the low-lr trial is pruned (seeded, deterministic)
    assert all(st in (TrialState.COMPLETE, TrialState.PRUNED) for st in states)
    assert all(s.metric_names == ["token_acc/len_03"] for s in studies)  # optuna-dashboard names the objective

    children, parents = child_runs(tmp_path, "smoke_tune")
    trials = [c for c in children if c.data.tags.get("harness.kind") == "trial"]
    assert len(trials) == 8
    for run in trials:
        study = next(s for s in studies if s.study_name == run.data.tags["trial.study"])
        frozen = study.trials[int(run.data.tags["trial.number"])]
        assert run.data.tags["trial.state"] == frozen.state.name
        assert float(run.data.params["optimizer.lr"]) == pytest.approx(frozen.params["optimizer.lr"])
        assert run.info.status == ("KILLED" if frozen.state == TrialState.PRUNED else "FINISHED")
        if frozen.state == TrialState.COMPLETE:
            assert run.data.metrics["token_acc/len_03"] == pytest.approx(frozen.value)
    tune_parent = next(p for p in parents if p.data.tags.get("harness.kind") == "tune")
    assert sum(k.startswith("tune.lr.best/") for k in tune_parent.data.tags) == 2

    again = cli(root, tmp_path, "tune", SUITE)  # done: no new trial
    assert again.returncode == 0 and sum(len(s.trials) for s in _studies(tmp_path)) == 8

    r = cli(root, tmp_path, "run", SUITE, "--workers", "2")
    assert r.returncode == 0, r.stderr
    children, _ = child_runs(tmp_path, "smoke_tune")
    final = [c for c in children if c.data.tags.get("harness.kind") != "trial"]
    assert len(final) == 4 and all(c.info.status == "FINISHED" for c in final)
    best = {s.study_name.split("/")[2]: s.best_params["optimizer.lr"] for s in _studies(tmp_path)}
    for c in final:
        want = best[f"model.pos_emb={c.data.params['model.pos_emb']}"]
        assert float(c.data.params["optimizer.lr"]) == pytest.approx(want)
        assert float(c.data.tags["tuned.optimizer.lr"]) == pytest.approx(want)
    report = (tmp_path / "reports" / "smoke_tune" / "report.md").read_text()
    assert "## Tuning: best params per cell" in report and "model.pos_emb=rel_k" in report
    # one results function: the notebook's path (pipeline.results by name) finds the tuned runs the report shows
    from harness import pipeline

    assert {r["run_id"] for r in pipeline.results(SUITE, f"sqlite:///{tmp_path}/mlflow.db").frame.iter_rows(named=True)} \
        == {c.data.tags["run_id"] for c in final}

    loaded = load_suite(root / "suites" / "smoke_tune.yaml")
    runs, summaries = apply_studies(loaded, expand(loaded), str(tmp_path / JOURNAL_NAME))
    assert {r.run_id for r in runs} == {c.data.tags["run_id"] for c in final} and all(s.done for s in summaries)


@pytest.mark.slow
def test_a_killed_study_resumes(root, tmp_path):
    """SIGKILL `harness tune` once the first trial is complete; the rerun keeps it, redoes the
    interrupted ones (not counted), and ends with the requested number of finished trials."""
    env = {**os.environ, "PYTHONPATH": str(root), "MLFLOW_DISABLE_TELEMETRY": "true"}
    argv = [sys.executable, "-m", "harness.cli", "tune", SUITE, "--workers", "1", "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"]
    proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and first is None:
        time.sleep(0.3)
        if (tmp_path / JOURNAL_NAME).exists():
            done = [t for s in _studies(tmp_path) for t in s.trials if t.state == TrialState.COMPLETE]
            running = [t for s in _studies(tmp_path) for t in s.trials if t.state == TrialState.RUNNING]
            if done and running:
                first = (done[0].number, done[0].value, done[0].params)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert first is not None, "no trial completed in time"

    r = cli(root, tmp_path, "tune", SUITE, "--workers", "1")
    assert r.returncode == 0, r.stderr
    studies = _studies(tmp_path)
    resumed = studies[0]
    kept = resumed.trials[first[0]]
    assert kept.state == TrialState.COMPLETE and (kept.value, kept.params) == first[1:]
    interrupted = [t for t in resumed.trials if t.user_attrs.get("interrupted")]
    assert interrupted and all(t.state == TrialState.FAIL for t in interrupted)
    for study in studies:
        assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials) == 4
    children, _ = child_runs(tmp_path, "smoke_tune")
    assert not [c for c in children if c.info.status == "RUNNING"]
    loaded = load_suite(root / "suites" / "smoke_tune.yaml")
    summaries = [summarize(s, loaded.spec.tune[0], c) for s, c in zip(studies, cells(loaded.spec.tune[0], expand(loaded), [0, 1]))]
    assert all(s.used == 4 and s.done for s in summaries)
