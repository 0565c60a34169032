"""harness.validate: each distinct task/model/method built once before any run (incompatible pairings, shape
errors, bad combinations and resource bombs are `file:line: key: message`, exit 2), parameter counts and
memory estimates, and every metric a report, claim or tune objective names checked against what runs log."""

import re
from pathlib import Path

import pytest
import torch
from conftest import TINY_SUITE

from harness import pipeline
from harness.cli import main
from harness.components import METHODS, MODELS, TASKS
from harness.spec import SpecError, load_and_expand
from harness.spec.find import REPO_SUITES
from harness.validate import estimate_resources
from harness.validate.resources import FAKE_GPU_MEMORY_ENV

SMOKE = str(REPO_SUITES / "smoke.yaml")


def suite(tmp_path: Path, text: str) -> str:
    (tmp_path / "s.yaml").write_text(text)
    return str(tmp_path / "s.yaml")


def error(capsys, *argv: str) -> str:
    assert main(["validate", *argv]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1, err
    return err.removeprefix("error: ").strip()


@pytest.mark.parametrize("overrides, expected", [
    # an incompatible pairing: a token model on an image task (every run used to FAIL at start)
    (["defaults.task={name: digits}"], r"smoke.yaml:19: defaults.model.name: model 'transformer' cannot be built on task "
                                       r"'digits': TypeError: model transformer needs a token-sequence task"),
    # a bad hyper-parameter combination inside one component
    (["defaults.model.n_heads=3"], r"<override>: defaults.model.n_heads: n_heads=3 must divide d_model=32"),
    # resource bombs, refused naming the key
    (["defaults.model.d_model=1048576"], r"<override>: defaults.model.d_model: a run needs about [\d.e+]+ GiB \(1\.\d+e\+13 parameters"),
    (["defaults.task.train_size=100000000000"], r"<override>: defaults.task.train_size: the task would hold [\d.e+]+ GiB of data"),
    (["defaults.model.n_layers=10000000"], r"<override>: defaults.model.n_layers: building model 'transformer' .* took over 5 s"),
    (["defaults.training.batch_size=16000000", "defaults.task.max_digits=1000"],  # 716 GiB of tokens, under the 2^24 cap
     r"<override>: defaults.training.batch_size: one batch of 16000000 rows of 3003 tokens"),
])
def test_the_dry_build_refuses_before_any_run(capsys, overrides, expected):
    assert re.search(expected, error(capsys, SMOKE, *overrides))
    assert torch.is_grad_enabled()  # a deadline that lands inside a no_grad block leaves the process as it was


def test_a_run_that_cannot_fit_its_gpu_slot(capsys, monkeypatch):
    """With a (pretend) 1 GiB GPU shared by 4 slots, a ~36M-parameter run (0.58 GiB with Adam) does not fit a slot."""
    monkeypatch.setenv(FAKE_GPU_MEMORY_ENV, str(2**30))
    big = ["defaults.model.d_model=512", "defaults.model.n_layers=12", "defaults.model.n_heads=8"]
    assert main(["validate", SMOKE, *big]) == 0
    capsys.readouterr()
    err = error(capsys, SMOKE, *big, "scheduler.slots_per_gpu=4")
    assert re.search(r"<override>: defaults.model.(d_model|n_layers): a run needs about 0\.\d+ GiB .* a GPU slot has 0.25 GiB", err), err


def test_a_shape_error_in_the_training_step(tmp_path, capsys):
    """A model whose output does not match the method's targets: caught by the dry step, named at method.name."""
    @MODELS.register("wrong_width_for_test", MODELS.get("transformer").config.__base__)
    def build(cfg, task):
        return torch.nn.Sequential(torch.nn.Embedding(task.vocab_size, 8), torch.nn.Linear(8, 4))  # 4 classes, targets up to 9

    text = TINY_SUITE.replace("{name: transformer, d_model: 16, n_layers: 1, n_heads: 2}", "{name: wrong_width_for_test}")
    err = error(capsys, suite(tmp_path, text))
    assert re.search(r"s.yaml:5: defaults.method.name: a training step of task 'arithmetic', model 'wrong_width_for_test' "
                     r"and method 'supervised' fails: \w+Error", err), err


def test_estimate_resources_counts_what_the_run_builds():
    _, runs = load_and_expand(SMOKE)
    cfg = runs[0].config
    r = estimate_resources(cfg)
    task = TASKS.get(cfg.task.name).build(cfg.task, 0)
    method = METHODS.get(cfg.method.name).build(cfg.method, MODELS.get(cfg.model.name).build(cfg.model, task), task)
    assert r.params == r.trainable == sum(p.numel() for p in method.module.parameters()) == 14336
    assert r.weight_bytes >= 4 * r.params and r.state_bytes == 3 * 4 * r.params  # grads + 2 Adam moments, float32
    assert r.activation_bytes > 0 and r.device == "cpu"
    doubled = estimate_resources(cfg.model_copy(update={"training": cfg.training.model_copy(update={"batch_size": 64})}))
    assert doubled.activation_bytes == 2 * r.activation_bytes  # measured on 2 rows, scaled to the batch


def test_frozen_parameters_are_counted_without_optimizer_state():
    """JEPA's EMA target: weights only (no gradient, no Adam moments)."""
    _, runs = load_and_expand(str(REPO_SUITES / "jepa_vs_mae.yaml"))
    jepa = next(r for r in runs if r.config.method.name == "jepa").config
    r = estimate_resources(jepa)
    assert r.trainable < r.params and r.state_bytes == 3 * 4 * r.trainable


@pytest.mark.parametrize("override, expected", [
    ("report.tables.0.metric=exakt/len_", r"report.tables\[0\].metric: no metric starting with 'exakt/len_' .*; did you mean 'exact/len_'\?"),
    ("claims.0.check.checks.0.metric=exact/len_99", r"claims\[0\].check.checks\[0\].metric: no metric 'exact/len_<n>'|"
                                                    r"no metric starting with 'exact/len_99'"),
    ("report.figures.0.where={model.pos_emb: rope}", r"report.figures\[0\].where: selects no run of the suite"),
])
def test_metric_references_are_checked(capsys, override, expected):
    assert re.search(expected, error(capsys, SMOKE, override))


def test_metric_references_in_the_suite_file_name_its_line(tmp_path, capsys):
    text = TINY_SUITE + ("report:\n  tables:\n    - {title: t, metric: exact/len_, rows: [model.pos_emb]}\n"
                         "claims:\n  - id: c\n    text: x\n    check: {kind: at_least, metric: exact/len_99, value: 0.5}\n"
                         "tune:\n  - {name: lr, space: {optimizer.lr: {type: float, low: 0.001, high: 0.01}}, objective: exact/len03, trials: 2}\n")
    err = error(capsys, suite(tmp_path, text))
    assert re.search(r"s.yaml:13: claims\[0\].check.metric: no run it selects logs metric 'exact/len_99'; did you mean "
                     r"'exact/len_0[34]'\? \(logged: exact/len_03, exact/len_04, examples_seen", err), err
    err = error(capsys, suite(tmp_path, text.replace("exact/len_99", "exact/len_04")))
    assert re.search(r"s.yaml:15: tune\[0\].objective: no run this block tunes logs metric 'exact/len03'; did you mean 'exact/len_03'", err), err
    assert main(["validate", suite(tmp_path, text.replace("exact/len_99", "exact/len_04").replace("len03", "len_03"))]) == 0


def test_claim_axis_range_must_meet_a_logged_suffix(capsys):
    err = error(capsys, SMOKE, "claims.0.check.checks.0.from=10")
    assert re.search(r"claims\[0\].check.checks\[0\].metric: no metric 'exact/len_<n>' with n in \[10.0, None\]", err), err


def test_validate_reports_the_dry_build(capsys):
    assert main(["validate", SMOKE, "defaults.model.d_model=16,32"]) == 0
    out, _ = capsys.readouterr()
    assert re.fullmatch(r"ok  \S+smoke.yaml: 8 runs, 4 configurations built, [\d,]+-[\d,]+ parameters \(profiles, expanded: paper 8 runs\)\n", out), out


def test_pipeline_load_checks_and_can_skip_it():
    bad = ["report.tables.0.metric=nope/"]
    with pytest.raises(SpecError, match="no metric starting with 'nope/'"):
        pipeline.load(SMOKE, bad)
    assert pipeline.load(SMOKE, bad, check=False).checked is None


def test_expand_shows_parameters_dropped_fields_and_finished_runs(tmp_path, capsys):
    """Per distinct configuration: runs, parameters, dropped fields, and the runs FINISHED in the store."""
    from harness.tags import Status, Tag
    from harness.track import Tracker

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    overrides = ["defaults.model.name=transformer,lstm", "~grid.model.pos_emb"]
    _, runs = load_and_expand(SMOKE, overrides)
    done = next(r for r in runs if r.config.model.name == "lstm")
    t = Tracker(uri)
    exp = t.experiment("smoke")
    t.terminate(t.create_child(exp, t.start_parent(exp, "p", {}), done.name, {Tag.RUN_ID: done.run_id}), Status.FINISHED)
    assert main(["expand", SMOKE, *overrides, "--tracking-uri", uri]) == 0
    out = capsys.readouterr().out
    lstm = next(line for line in out.splitlines() if "model=lstm" in line and "│ 2 " in line)
    assert re.search(r"│ 2\s+│ 9,408\s+│ [\d.]+ MiB \(cpu\)\s+│ model.n_heads\s+│ 1/2", lstm), lstm
    tf = next(line for line in out.splitlines() if "model=transformer" in line and "│ 2 " in line)
    assert re.search(r"│ 14,\d{3}\s+│ .*│ -\s+│ 0/2", tf), tf
    capsys.readouterr()
    assert main(["expand", SMOKE, "--tracking-uri", f"sqlite:///{tmp_path}/none/mlflow.db"]) == 0
    assert not (tmp_path / "none").exists()  # expand writes no store


def test_the_build_deadline_keeps_a_timer_the_caller_armed():
    """The meta build's SIGALRM deadline restores an outer timer (pytest-timeout's): with what it has left, and
    when the outer one is due first, its handler runs at its own time while the deadline goes on."""
    import signal
    import time

    from harness.validate.resources import _deadline, _TooSlow

    fired = []
    previous = signal.signal(signal.SIGALRM, lambda *_: fired.append(time.monotonic()))
    try:
        signal.setitimer(signal.ITIMER_REAL, 30.0)
        with _deadline(0.05):
            pass
        left, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 29.0 < left <= 30.0 and not fired  # still armed after the deadline, minus the time it took
        with pytest.raises(_TooSlow):  # the deadline itself still strikes under an outer timer due later
            with _deadline(0.1):
                time.sleep(5)
        assert 29.0 < signal.getitimer(signal.ITIMER_REAL)[0] and not fired
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        start = time.monotonic()
        with pytest.raises(_TooSlow):  # the outer one is due first: it fires, then the deadline at 0.3 s
            with _deadline(0.3):
                while time.monotonic() - start < 5:
                    time.sleep(0.01)
        took = time.monotonic() - start
        assert len(fired) == 1 and fired[0] - start < 0.2 and 0.25 < took < 1.0, (fired, took)
        assert signal.getitimer(signal.ITIMER_REAL)[0] == 0.0  # spent: nothing re-armed
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_every_option_of_every_command_has_help_and_there_is_a_version(capsys):
    import argparse

    from harness.cli import build_parser, main

    parser = build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = [f"{name} {'/'.join(a.option_strings) or a.dest}" for name, p in [("", parser), *subs.choices.items()]
               for a in p._actions if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)) and not a.help]
    assert missing == []
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("harness 0.1.0 (")


def test_list_describe_and_show_explain_the_components_and_the_resolved_suite(capsys):
    from harness.cli import main
    from harness.registry import ALL

    assert main(["list"]) == 0
    out = capsys.readouterr().out.splitlines()
    for kind, reg in ALL.items():  # every registry, each with every name it holds (no hand-kept list of names)
        assert f"{kind}: {', '.join(reg.names())}" in out
    assert any(line.startswith("suite: ") and "smoke" in line.split(", ") for line in out)
    assert main(["list", "probes"]) == 0 and "linear" in capsys.readouterr().out
    assert main(["list", "prob"]) == 2 and "did you mean 'probe'?" in capsys.readouterr().err
    assert main(["describe", "jepa"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("method jepa") and "ema_start" in out and "0.996" in out and "momentum of the first update" in out
    assert main(["describe", "linar"]) == 2 and "did you mean 'linear'?" in capsys.readouterr().err
    assert main(["show", SMOKE, "defaults.training.steps=3"]) == 0
    out = capsys.readouterr().out
    assert "with defaults.training.steps=3" in out and "  training:\n    steps: 3\n" in out
    assert main(["show", SMOKE, "--run", "0"]) == 0 and "seed: 0" in capsys.readouterr().out


def test_the_build_deadline_never_lands_inside_an_import(tmp_path, monkeypatch):
    """A deadline due while a module's code runs waits for its import to end: the module is whole afterwards (an
    interrupted first import of torch._dynamo left it half-initialized: `expand --profile` crashed 5 times in 11)."""
    import sys
    import time

    from harness.validate.resources import _deadline, _TooSlow

    (tmp_path / "slow_module_for_the_deadline.py").write_text("import time\ntime.sleep(0.3)\nDONE = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    t0 = time.monotonic()
    with pytest.raises(_TooSlow):
        with _deadline(0.05):
            import slow_module_for_the_deadline  # noqa: F401
            time.sleep(5)  # the deadline strikes here, after the import
    assert sys.modules["slow_module_for_the_deadline"].DONE and 0.3 <= time.monotonic() - t0 < 2
