"""Stages: expansion, identity, validation errors, the job queue, evaluation-only runs, checkpoint lookup
through the store, and suites with stages end to end through the real CLI (scheduling order, failure
propagation, resume after kill -9 between stages)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import TINY_SUITE, child_runs, cli
from conftest import spec_error as err
from conftest import write_suite as write

from harness.backends.base import Job, JobQueue
from harness.cli import main
from harness.components import METHODS
from harness.registry import ComponentConfig
from harness.report.frame import build as frame
from harness.report.frame import run_columns
from harness.report.tables import metric_table
from harness.runner import build, start_from
from harness.spec import expand, load_suite
from harness.spec.find import load_and_expand
from harness.spec.models import RunConfig, TableSpec
from harness.tags import Outcome, Tag
from harness.track import Tracker, TrackingError
from harness.train import fit

STAGED = TINY_SUITE + """\
stage: pretrain
seeds: [0, 1]
stages:
  eval:
    from: pretrain
    defaults: {training: {steps: 0}}
  extend:
    from: pretrain
    defaults:
      training: {steps: 3}
    grid:
      optimizer.lr: [1.0e-3, 3.0e-3]
"""




# ---------------------------------------------------------------- expansion and identity
def test_a_stage_crosses_its_grid_with_the_runs_of_its_source_stage(tmp_path):
    runs = expand(load_suite(write(tmp_path, STAGED)))
    by = {s: [r for r in runs if r.stage == s] for s in ("pretrain", "eval", "extend")}
    assert [len(v) for v in by.values()] == [2, 2, 4]
    pre = {r.run_id: r for r in by["pretrain"]}
    for r in by["eval"] + by["extend"]:
        src = pre[r.config.source.run_id]
        assert r.config.source.stage == "pretrain" and r.config.source.config == src.config
        assert r.config.seed == src.config.seed and r.config.model == src.config.model and r.config.task == src.config.task
        assert r.source_name == src.name and r.name.endswith(f"<- {src.name}")
    assert {r.config.training.steps for r in by["eval"]} == {0} and {r.config.optimizer.lr for r in by["extend"]} == {1e-3, 3e-3}
    flat = by["extend"][0].config.flat()
    assert flat["source.stage"] == "pretrain" and flat["source.training.steps"] == 5 and flat["training.steps"] == 3


def test_expand_shows_stages_and_dependencies_and_a_table_names_each_rows_source_runs(tmp_path, capsys):
    path = write(tmp_path, STAGED)
    assert main(["expand", str(path)]) == 0
    out = capsys.readouterr().out
    assert "from (run_id)" in out and "stages: pretrain (2 runs), eval <- pretrain (2 runs), extend <- pretrain (4 runs)" in out
    runs = expand(load_suite(path))
    lines = {r.run_id: next(line for line in out.splitlines() if line.startswith(f"│ {r.run_id} ")) for r in runs}
    for r in runs:  # each run's line: its stage, and a stage run's source run_id
        assert r.stage in lines[r.run_id] and (r.config.source is None or r.config.source.run_id in lines[r.run_id])
    df = frame([{**run_columns(r), "exact/len_3": 0.5 + r.config.seed / 10} for r in runs])
    table = metric_table(df, TableSpec(title="t", metric="exact/len_", rows=["optimizer.lr"], where={"stage": "extend"}))
    assert "Source runs per row (stage runs start from them): 0.001 ← `default` (seeds 0, 1); 0.003 ← `default` (seeds 0, 1)." in table.note
    assert "Source runs" not in metric_table(df, TableSpec(title="t", metric="exact/len_", rows=["stage"], where={"stage": "pretrain"})).note


def test_a_suite_without_stages_keeps_its_run_ids(tmp_path):
    plain = expand(load_suite(write(tmp_path, TINY_SUITE)))
    staged = expand(load_suite(write(tmp_path, STAGED.replace("seeds: [0, 1]", "seeds: [0]"), "b.yaml")))
    assert plain[0].run_id == next(r for r in staged if r.stage == "pretrain").run_id and plain[0].stage == ""
    assert "source" not in plain[0].config.canonical_json()


def test_changing_the_pretraining_reruns_its_stages_and_a_new_axis_trains_no_encoder(tmp_path):
    path = write(tmp_path, STAGED)
    base = {r.name: r.run_id for r in expand(load_suite(path))}
    lr = {r.name: r.run_id for r in expand(load_suite(path, ["defaults.optimizer.lr=0.01"]))}
    assert not set(base.values()) & set(lr.values())  # every pretraining run changed, so did every stage run
    wider = {r.name: r.run_id for r in expand(load_suite(path, ["stages.extend.grid.optimizer.lr=[1.0e-3,3.0e-3,1.0e-2]"]))}
    assert all(wider[name] == rid for name, rid in base.items())  # nothing retrained, nothing renamed
    assert len(wider) == len(base) + 2


def test_stages_chain_and_filter_their_sources(tmp_path):
    text = STAGED + """\
  again:
    from: extend
    where: {optimizer.lr: 1.0e-3}
    defaults: {training: {steps: 0}}
"""
    runs = expand(load_suite(write(tmp_path, text)))
    again = [r for r in runs if r.stage == "again"]
    extend = {r.run_id: r for r in runs if r.stage == "extend"}
    assert len(again) == 2 and all(extend[r.config.source.run_id].config.optimizer.lr == 1e-3 for r in again)
    assert again[0].config.source.config.source.stage == "pretrain"  # the chain is kept whole


@pytest.mark.parametrize("extra, expected", [
    ("  probe:\n    from: pretrian\n", r"s.yaml:\d+: stages.probe.from: unknown stage 'pretrian'; did you mean 'pretrain'\?"),
    ("  probe:\n    from: probe\n", r"stages.probe.from: unknown stage 'probe'.*before 'probe'"),
    ("  probe:\n    from: pretrain\n    where: {optimizer.lr: 0.5}\n", r"s.yaml:\d+: stages.probe.where: matches no run of stage 'pretrain'"),
    ("  probe:\n    from: pretrain\n    grid: {modle.d_model: [8]}\n", r"stages.probe.grid.modle.d_model: axis must start with"),
    ("  probe:\n    from: pretrain\n    defaults: {source: {stage: x}}\n", r"stages.probe.defaults: 'source' is set by stages"),
    ("  probe:\n    from: pretrain\n    defaults: {method: {name: needs_tokens}}\n",
     r"stages.probe.defaults.method.name: method 'needs_tokens' needs tokens from its source run, which method 'supervised' does not provide"),
    ("  probe:\n    from: pretrain\n    seeds: [1, 1]\n", r"stages.probe.seeds: seeds must be unique"),
])
def test_stage_mistakes_are_file_line_errors(tmp_path, extra, expected):
    import re

    msg = err(write(tmp_path, STAGED + extra))
    assert re.search(expected, msg), msg


class NeedsTokensConfig(ComponentConfig):
    pass


METHODS.register("needs_tokens", NeedsTokensConfig, requires={"tokens"}, metrics=lambda cfg, task: [])(lambda cfg, model, task: None)


# ---------------------------------------------------------------- execution pieces
def test_job_queue_waits_for_sources_caps_groups_and_drops_dependants_of_a_failure():
    a, b = Job("a", [], Path("a")), Job("b", [], Path("b"))
    c = Job("c", [], Path("c"), after=("a",), group="s")
    d = Job("d", [], Path("d"), after=("c",), group="s")
    e = Job("e", [], Path("e"), after=("b",), group="s")
    f = Job("f", [], Path("f"), after=("done-earlier",), group="s")  # not in the queue: counts as done
    q = JobQueue([a, b, c, d, e, f], caps={"s": 1})
    assert q.next([]) is a and q.next([a]) is b and q.next([a, b]) is f  # c and e wait for their sources
    assert q.next([a, b, f]) is None  # group s is at its cap
    q.succeed("a")
    assert q.next([b]) is c  # as soon as its own source succeeded, not after the whole stage
    assert q.fail("b") == [e] and q.next([]) is None and [j.key for j in q.pending] == ["d"]
    assert q.fail("c") == [d] and not q


def test_zero_steps_evaluates_only(tmp_path):
    _, runs = load_and_expand(str(write(tmp_path, STAGED)))
    cfg = next(r for r in runs if r.stage == "eval").config
    _, source = build(cfg.source.config)
    task, method = build(cfg)
    start_from(method, source)
    before = {k: v.clone() for k, v in method.module.state_dict().items()}
    result = fit(method, iter(()), cfg)  # no batch is ever drawn
    assert result.steps == 0 and result.status == "finished" and result.metrics
    assert all((before[k] == v).all() for k, v in method.module.state_dict().items())
    assert all((v == source.module.state_dict()[k]).all() for k, v in method.module.state_dict().items())


def test_a_stage_method_that_cannot_take_the_source_weights_says_so(tmp_path):
    _, runs = load_and_expand(str(write(tmp_path, STAGED)))
    cfg = next(r for r in runs if r.stage == "eval").config
    other = RunConfig.model_validate({**cfg.model_dump(mode="json"), "model": {**cfg.model.model_dump(mode="json"), "d_model": 32}})
    _, method = build(other)
    _, source = build(cfg.source.config)
    with pytest.raises(RuntimeError, match="cannot start from its source's weights"):
        start_from(method, source)


def test_checkpoints_are_found_through_the_store(tmp_path):
    t = Tracker(f"sqlite:///{tmp_path}/mlflow.db")
    t.setup()
    exp = t.experiment("s")
    parent = t.start_parent(exp, "p", {})
    good = t.create_child(exp, parent, "good", {Tag.RUN_ID: "a"})
    (tmp_path / "model.pt").write_bytes(b"weights")
    t.client.log_artifact(good, str(tmp_path / "model.pt"))
    t.terminate(good, "FINISHED")
    bare = t.create_child(exp, parent, "bare", {Tag.RUN_ID: "b"})
    t.terminate(bare, "FINISHED")
    assert t.checkpoint("s", "a", tmp_path / "dl").read_bytes() == b"weights"
    with pytest.raises(TrackingError, match="has no model.pt"):
        t.checkpoint("s", "b", tmp_path / "dl2")
    with pytest.raises(TrackingError, match="no FINISHED run with run_id zz"):
        t.checkpoint("s", "zz", tmp_path / "dl3")


# ---------------------------------------------------------------- end to end
def _by_name(tmp_path: Path, suite: str) -> dict:
    children, _ = child_runs(tmp_path, suite)
    return {r.info.run_name: r for r in children}


@pytest.mark.slow
def test_smoke_stages_end_to_end(root, tmp_path):
    suite = str(root / "suites" / "smoke_stages.yaml")
    proc = cli(root, tmp_path, "run", suite, "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    runs = _by_name(tmp_path, "smoke_stages")
    assert len(runs) == 8 and all(r.info.status == "FINISHED" for r in runs.values())
    pretrain = {r.data.tags[Tag.RUN_ID]: r for r in runs.values() if r.data.tags[Tag.STAGE] == "pretrain"}
    for r in runs.values():
        if r.data.tags[Tag.STAGE] == "pretrain":
            assert Tag.SOURCE_RUN_ID not in r.data.tags
            continue
        src = pretrain[r.data.tags[Tag.SOURCE_RUN_ID]]
        assert r.data.tags[Tag.SOURCE_MLFLOW_ID] == src.info.run_id and src.info.run_id in r.data.tags[Tag.NOTE]
        assert r.info.start_time >= src.info.end_time  # started once its source had finished
        assert r.data.params["source.run_id"] == src.data.tags[Tag.RUN_ID]
        if r.data.tags[Tag.STAGE] == "eval":  # its checkpoint, fetched from the store: the same model exactly
            assert {k: v for k, v in r.data.metrics.items() if "/len_" in k} == {k: v for k, v in src.data.metrics.items() if "/len_" in k}
    report = (tmp_path / "reports" / "smoke_stages" / "report.md").read_text()
    assert "| eval |" in report and "| extend | 0.001 |" in report and "| pretrain |" in report
    again = cli(root, tmp_path, "run", suite, "--workers", "2", "--no-report")
    assert again.returncode == 0 and "8 already finished, 0 to run" in again.stderr


@pytest.mark.slow
def test_a_stage_run_starts_as_soon_as_its_own_source_finished_and_a_failed_source_skips_its_dependants(root, tmp_path):
    path = tmp_path / "fp.yaml"
    path.write_text(yaml.safe_dump({
        "include": str(root / "suites" / "smoke_stages.yaml"), "name": "fp", "seeds": [0],
        "ablations": {"long": {"training": {"steps": 400}}, "crash": {"training": {"fault": {"kind": "raise", "at_step": 2}}}},
        "stages": {"eval": {"from": "pretrain", "defaults": {"training": {"steps": 0}}}}}))
    proc = cli(root, tmp_path, "run", str(path), "--workers", "2", "--no-report")
    assert proc.returncode == 1, proc.stderr
    runs = _by_name(tmp_path, "fp")
    short, long_, crash = (runs[n] for n in ("pos_emb=abs seed=0", "long seed=0", "crash seed=0"))
    assert crash.info.status == "FAILED" and long_.info.status == "FINISHED"
    eval_short = runs["eval seed=0 <- pos_emb=abs seed=0"]
    assert eval_short.info.status == "FINISHED" and eval_short.info.start_time < long_.info.end_time  # not after the whole stage
    skipped = runs["eval seed=0 <- crash seed=0"]
    assert skipped.info.status == "KILLED" and skipped.data.tags[Tag.OUTCOME] == Outcome.SKIPPED
    assert "crash seed=0" in skipped.data.tags[Tag.SKIPPED_BECAUSE] and "skipped" in proc.stderr
    assert runs["eval seed=0 <- long seed=0"].info.status == "FINISHED"  # the rest of the suite went on


@pytest.mark.slow
def test_kill_9_between_stages_then_rerun_trains_no_encoder_again(root, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(root), "MLFLOW_DISABLE_TELEMETRY": "true"}
    argv = [sys.executable, "-m", "harness.cli", "run", str(root / "suites" / "smoke_stages.yaml"), "--workers", "1", "--no-report",
            "stages.extend.defaults.training.steps=200", "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"]
    proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:  # both pretraining runs done, the stages under way: kill
        time.sleep(0.2)
        if not (tmp_path / "mlflow.db").exists():
            continue
        runs = _by_name(tmp_path, "smoke_stages") if Tracker(f"sqlite:///{tmp_path}/mlflow.db").experiment_id("smoke_stages") else {}
        pre = [r for r in runs.values() if r.data.tags.get(Tag.STAGE) == "pretrain" and r.info.status == "FINISHED"]
        if len(pre) == 2 and any(r.data.tags.get(Tag.STAGE) == "extend" and r.info.status == "RUNNING" for r in runs.values()):
            break
    else:
        proc.kill()
        pytest.fail("the stages never got under way")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    encoders = {r.data.tags[Tag.RUN_ID]: r.info.run_id for r in pre}
    again = cli(root, tmp_path, "run", str(root / "suites" / "smoke_stages.yaml"), "--workers", "2", "--no-report",
                "stages.extend.defaults.training.steps=200")
    assert again.returncode == 0, again.stderr
    runs = list(child_runs(tmp_path, "smoke_stages")[0])
    done = [r for r in runs if r.info.status == "FINISHED"]
    assert len(done) == len({r.data.tags[Tag.RUN_ID] for r in done}) == 8  # exactly one FINISHED per run_id
    assert {r.data.tags[Tag.RUN_ID]: r.info.run_id for r in done if r.data.tags[Tag.STAGE] == "pretrain"} == encoders
    assert not [r for r in runs if r.info.status == "RUNNING"]
