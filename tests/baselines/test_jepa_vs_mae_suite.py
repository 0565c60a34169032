"""The jepa_vs_mae suite end to end through the real CLI (tiny overrides), real MLflow and worker processes."""

import pytest
from conftest import cli, report_dir

from harness.track import Tracker

pytestmark = pytest.mark.slow

TINY = [
    "seeds=[0]",
    "defaults.training.steps=6",
    "defaults.training.log_every=2",
    "defaults.evaluation.every=3",
    "defaults.optimizer.warmup_steps=2",
    "defaults.model.d_model=16",
    "defaults.model.n_heads=2",
    *(f"stages.{s}.defaults.method.probes=[{{name: linear}}, {{name: knn}}, {{name: attentive, steps: 20}}, "
      "{name: linear, labels: 100}, {name: knn, labels: 100}]" for s in ("probe", "probe_untrained", "probe_supervised")),
    "stages.supervised.defaults.training.steps=6",
]


def test_jepa_vs_mae_suite_smoke(root, tmp_path):
    proc = cli(root, tmp_path, "run", str(root / "suites" / "jepa_vs_mae.yaml"), "--workers", "2", *TINY)
    assert proc.returncode == 0, proc.stderr
    t = Tracker(f"sqlite:///{tmp_path}/mlflow.db")
    exp = t.client.get_experiment_by_name("jepa_vs_mae")
    children = [r for r in t.client.search_runs([exp.experiment_id]) if "run_id" in r.data.tags]
    stages = ("pretrain", "probe", "probe_untrained", "supervised", "probe_supervised")
    by_stage = {s: [r for r in children if r.data.tags["stage"] == s] for s in stages}
    # pretrain: 2 datasets x (3 jepa n_targets + 3 mae ratios) + 2 untrained ablations; then one probe run per encoder;
    # the ceiling: each untrained encoder trained with labels, then probed
    assert [len(by_stage[s]) for s in by_stage] == [14, 12, 2, 2, 2] and len(children) == 32
    assert all("finetune/score" in r.data.metrics for r in by_stage["supervised"])
    children = [r for r in children if r.data.tags["stage"] != "supervised"]
    for r in children:
        assert r.info.status == "FINISHED" and r.data.tags["outcome"] == "finished"
        assert {"probe/linear", "collapse/std_mean", "collapse/std_min", "collapse/eff_rank"} <= set(r.data.metrics)
        assert 0.0 <= r.data.metrics["probe/linear"] <= 1.0
    pretrain = {r.data.tags["run_id"]: r for r in by_stage["pretrain"]}
    for r in by_stage["pretrain"]:  # the expensive probes moved to the probe stages
        assert "probe/knn" not in r.data.metrics and "probe/attentive" not in r.data.metrics
    for r in by_stage["probe"] + by_stage["probe_untrained"]:
        assert {"probe/knn", "probe/attentive", "probe/linear_100", "probe/knn_100"} <= set(r.data.metrics)
        src = pretrain[r.data.tags["source.run_id"]]  # the same encoder, read from its checkpoint: the same linear probe
        assert r.data.metrics["probe/linear"] == src.data.metrics["probe/linear"]
        assert (src.data.params["training.steps"] == "1") == (r.data.tags["stage"] == "probe_untrained")
    jepa = [r for r in by_stage["pretrain"] if r.data.params["method.name"] == "jepa" and r.data.tags["ablation"] == "none"]
    assert len(jepa) == 6 and all(r.data.metrics["ema/momentum"] == 1.0 for r in jepa)
    # the linear probe ran during training too (evaluation.every), so curves exist
    assert [m.step for m in t.client.get_metric_history(jepa[0].info.run_id, "probe/linear")] == [3, 6]

    out = report_dir(tmp_path, "jepa_vs_mae")  # a variant (the tiny overrides): its own folder
    report = (out / "report.md").read_text()
    assert "Runs with results: 32 of 32 expected." in report
    assert "| floor: untrained | shapes |" in report and "| ceiling: supervised | shapes |" in report  # in every probe table
    assert "| digits | 1 | 1 |" in report and "| shapes | 4 | 1 |" in report  # JEPA rows by the source's n_targets
    assert "| digits | 0.5 | 1 |" in report and "| shapes | 0.9 | 1 |" in report  # MAE rows
    untrained = report.split("## Untrained (randomly initialized) encoder")[1].split("##")[0]
    assert "| digits | 1 |" in untrained and "| shapes | 1 |" in untrained
    assert "probe linear_100" in report and "probe attentive" in report and " eff_rank" in report
    # each probe row names the pretraining runs it read
    assert "shapes / 4 ← `task=shapes method=jepa n_targets=4` (seeds 0)" in report
    assert "_no results yet_" not in report and "Runs no table shows" not in report
    assert "| jepa_prefers_predictive_features |" in report
    for png in ("jepa_probe_vs_n_targets.png", "mae_probe_vs_ratio.png"):
        assert (out / png).stat().st_size > 1000
