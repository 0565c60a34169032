"""Pretraining and probing as stages (suites/smoke_probe.yaml) through the real CLI, MLflow and workers: the
probe stage reads each pretrained encoder from its checkpoint in the store and trains nothing."""

import pytest
import torch
from conftest import child_runs, cli

from harness.components import METHODS
from harness.runner import build, start_from, train_stream
from harness.spec import load_and_expand
from harness.spec.errors import SpecError
from harness.train import fit


def test_a_probe_stage_needs_a_source_that_provides_a_representation(root, tmp_path):
    assert {"jepa", "mae", "raw"} <= {n for n in METHODS.names() if "representation" in METHODS.get(n).provides}
    suite = (root / "suites" / "smoke_probe.yaml").read_text()
    _, runs = load_and_expand(root / "suites" / "smoke_probe.yaml")
    assert {r.config.method.name for r in runs if r.stage == "probe"} == {"probe"}
    assert all(r.config.training.steps == 0 and r.config.source.stage == "pretrain" for r in runs if r.stage == "probe")
    worse = tmp_path / "worse.yaml"  # probing a supervised transformer: it has no representation to give
    worse.write_text(suite.replace("stages:\n  probe:\n    from: pretrain\n", "stages:\n  sup:\n    from: pretrain\n"
                     "    defaults: {task: {name: arithmetic}, model: {name: transformer}, method: {name: supervised}}\n"
                     "  probe:\n    from: sup\n"))
    with pytest.raises(SpecError, match="does not provide"):
        load_and_expand(worse)


@pytest.mark.parametrize("freeze", [True, False])
def test_finetune_starts_from_the_source_encoder_and_freeze_trains_the_head_only(root, freeze):
    torch.set_num_threads(1)
    _, runs = load_and_expand(root / "suites" / "smoke_probe.yaml", ["stages.finetune.defaults.training.steps=3"])
    cfg = next(r.config for r in runs if r.stage == "finetune" and r.config.method.freeze == freeze)
    task, source = build(cfg.source.config)
    fit(source, train_stream(cfg.source.config, task, source), cfg.source.config.model_copy(
        update={"training": cfg.source.config.training.model_copy(update={"steps": 2})}))
    pretrained = {k: v.clone() for k, v in source.representation().module.state_dict().items()}
    task, m = build(cfg)
    start_from(m, source)
    assert all(torch.equal(m.encoder.state_dict()[k], v) for k, v in pretrained.items())
    assert len(m.fit) == 64 and len(m.fit.labels.unique()) == 10  # 64 labels, stratified over digits' 10 classes
    head = m.module["head"].linear.weight.clone()
    fit(m, train_stream(cfg, task, m), cfg)
    moved = [not torch.equal(m.encoder.state_dict()[k], v) for k, v in pretrained.items()]
    assert (not any(moved)) if freeze else any(moved)
    assert not torch.equal(m.module["head"].linear.weight, head) and 0.0 <= m.evaluate()["finetune/score"] <= 1.0


@pytest.mark.slow
def test_smoke_probe_suite(root, tmp_path):
    proc = cli(root, tmp_path, "run", str(root / "suites" / "smoke_probe.yaml"), "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    children, _ = child_runs(tmp_path, "smoke_probe")
    assert len(children) == 16 and all(r.data.tags["outcome"] == "finished" for r in children)
    tuned = [r for r in children if r.data.params["method.name"] == "finetune"]
    assert len(tuned) == 4 and all(0.0 <= r.data.metrics["finetune/score"] <= 1.0 for r in tuned)
    assert all(by_id_source in {r.data.tags["run_id"] for r in children} for by_id_source in (r.data.params["source.run_id"] for r in tuned))
    by_id = {r.data.tags["run_id"]: r for r in children}
    probes = [r for r in children if r.data.params["method.name"] == "probe"]
    assert len(probes) == 6
    for r in probes:
        m, source = r.data.metrics, by_id[r.data.params["source.run_id"]]
        assert {"probe/linear", "probe/linear_64", "probe/knn", "probe/attentive", "collapse/eff_rank"} <= set(m)
        assert "train/loss" not in m  # 0 training steps
        # the same frozen encoder, the same fit: the pretraining run's final linear probe to the last digit
        assert m["probe/linear"] == source.data.metrics["probe/linear"]
        assert m["collapse/eff_rank"] == pytest.approx(source.data.metrics["collapse/eff_rank"], rel=1e-6)
    report = (tmp_path / "reports" / "smoke_probe" / "report.md").read_text()
    for row in ("| probe |  | jepa | 30 |", "| probe |  | mae | 30 |", "| probe |  | jepa | 1 |"):  # 1 step: untrained
        assert row in report
