"""MLflow's share of a real run (`make bench`): one length_generalization run (its suite's first config,
unchanged: 2000 steps, evaluation every 500) trained in this process through `harness.runner.run_one`
into a sqlite store, as a worker does.  `RunLog.seconds` is the wall time spent in tracking calls (params,
tags, config.json, every metric flush, the model artifact, the final status); printed as a share of the
run's wall time.  No timed assertions."""

import time
from pathlib import Path

import pytest
import torch

from harness.spec import load_and_expand
from harness.tags import Status
from harness.track import RunLog, Tracker

pytestmark = pytest.mark.bench

ROOT = Path(__file__).resolve().parents[1]


def test_tracking_share_of_a_length_generalization_run(tmp_path):
    from harness.runner import run_one

    torch.set_num_threads(1)
    _, runs = load_and_expand(str(ROOT / "suites" / "length_generalization.yaml"))
    spec = runs[0]
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    t = Tracker(uri)
    t.setup()
    exp = t.experiment("bench_tracking")
    mid = t.create_child(exp, t.start_parent(exp, "p", {}), spec.name, {"run_id": spec.run_id})
    t0 = time.perf_counter()
    log = RunLog(uri, mid)
    result = run_one(spec, log, tmp_path / "work")
    log.finish(Status.FINISHED)
    wall = time.perf_counter() - t0
    points = sum(len(t.client.get_metric_history(mid, k)) for k in t.client.get_run(mid).data.metrics)
    assert result.steps == spec.config.training.steps and points > 100
    print(f"\n[bench] length_generalization run ({spec.name}, {result.steps} steps, {points} metric points): "
          f"wall {wall:.1f} s, tracking {log.seconds:.2f} s = {100 * log.seconds / wall:.2f}% of the run")
