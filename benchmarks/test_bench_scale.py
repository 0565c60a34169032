"""Resume and report at scale (`make bench`): a store holding N finished runs of a suite (written by this
benchmark through the MLflow API with the tags, params and final metrics the harness writes; nothing is
trained), then `harness run` (which must train nothing) and `harness report`, each a fresh process.
Printed per N (1,000 and 10,000): their wall times, and the same minus the start-up of a process that
only imports the harness and the plugins ("after imports").  No timed assertions."""

import sys
import time
from pathlib import Path

import pytest
from timing import timed

from harness.orchestrate import run_tags
from harness.session import suite_tags
from harness.spec import load_and_expand
from harness.tags import Kind, Outcome, Status, Tag
from harness.track import Tracker

pytestmark = pytest.mark.bench

ROOT = Path(__file__).resolve().parents[1]
SUITE = str(ROOT / "benchmarks" / "scale_suite.yaml")
LRS_10K = "grid.optimizer.lr=[" + ",".join(f"{1e-4 * 1.1 ** i:.6g}" for i in range(50)) + "]"
METRICS = ("exact/len_03", "exact/len_04", "exact/len_06", "token_acc/len_03", "token_acc/len_04", "token_acc/len_06")


def populate(uri: str, overrides: list[str]) -> int:
    """Write every run of the suite as a FINISHED child run with what a worker leaves (params, tags, final
    metrics), each in three MLflow calls: create_run, one log_batch, set_terminated."""
    from mlflow.entities import Metric, Param, RunTag

    from harness.backends import Slot

    loaded, runs = load_and_expand(SUITE, overrides)
    t = Tracker(uri)
    t.setup()
    exp = t.experiment(loaded.spec.name)
    tags = suite_tags(loaded.spec.name)
    parent = t.start_parent(exp, f"{loaded.spec.name} populated", {**tags, Tag.KIND: Kind.INVOCATION, Tag.COMMAND: "populate"})
    worker_tags = {Tag.DEVICE: "cpu", Tag.N_PARAMS: "13000", Tag.OUTCOME: Outcome.FINISHED}
    for i, r in enumerate(runs):
        mid = t.create_child(exp, parent, r.name, {**tags, **run_tags(r, Slot(i % 2), 0)})
        step = r.config.training.steps
        values = {m: (i % 97) / 97 for m in METRICS} | {"train/loss": 1.0, "time/train_seconds": 1.0}
        t.client.log_batch(mid, metrics=[Metric(k, v, 0, step) for k, v in values.items()],
                           params=[Param(k, str(v)) for k, v in r.config.flat().items()],
                           tags=[RunTag(k, str(v)) for k, v in worker_tags.items()])
        t.terminate(mid, Status.FINISHED)
    t.terminate(parent, Status.FINISHED)
    return len(runs)


@pytest.mark.parametrize("n, overrides", [(1000, []), (10000, [LRS_10K])], ids=["1000", "10000"])
def test_rerun_and_report_at_scale(tmp_path, n, overrides):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    t0 = time.perf_counter()
    assert populate(uri, overrides) == n
    made = time.perf_counter() - t0
    imports, _ = timed([sys.executable, "-c", "import harness.pipeline; from harness.plugins import load_plugins; load_plugins()"], tmp_path)
    run_s, proc = timed([sys.executable, "-m", "harness.cli", "run", SUITE, *overrides, "--no-report", "--tracking-uri", uri], tmp_path)
    assert f"{n} already finished, 0 to run" in proc.stderr, proc.stderr[-2000:]
    report_s, proc = timed([sys.executable, "-m", "harness.cli", "report", SUITE, *overrides, "--tracking-uri", uri,
                            "--reports-dir", str(tmp_path / "reports")], tmp_path)
    assert f"Runs with results: {n} of {n} expected." in (tmp_path / "reports" / "bench_scale" / "report.md").read_text()
    print(f"\n[bench] {n} finished runs (written in {made:.0f} s): harness run (trains nothing) {run_s:.1f} s "
          f"({run_s - imports:.1f} s after imports), harness report {report_s:.1f} s ({report_s - imports:.1f} s after imports); "
          f"imports alone {imports:.1f} s")
