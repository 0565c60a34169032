"""Resume and report at scale (`make bench`): a store holding N finished runs of a suite (written by this
benchmark through the MLflow API with the tags, params, final metrics and metric histories the harness
writes; nothing is trained), then `harness run` (which must train nothing) and `harness report` (its
tables, a figure over the metric histories of every run), each a fresh process.  Printed per N (1,000 and
10,000): their wall times, the same minus the start-up of a process that only imports the harness and the
plugins ("after imports"), and the history read alone: one SQL query per 500 runs (Tracker.histories)
against a get_metric_history call per run and metric (on the first 200 runs, scaled).  No timed assertions."""

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
HISTORY_STEPS = (10, 20, 30, 40)  # exact/len_03 and examples_seen at each (what the history figure reads)


def populate(uri: str, overrides: list[str]) -> int:
    """Write every run of the suite as a FINISHED child run with what a worker leaves (params, tags, final
    metrics and the histories of exact/len_03 and examples_seen), each in three MLflow calls: create_run,
    one log_batch, set_terminated."""
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
        values = {m: (i % 97) / 97 for m in METRICS} | {"train/loss": 1.0, "time/train_seconds": 1.0, "examples_seen": step * 32.0}
        history = [Metric(k, v, 0, s) for s in HISTORY_STEPS[:-1]
                   for k, v in {"exact/len_03": (i % 97) / 97 * s / step, "examples_seen": s * 32.0}.items()]
        t.client.log_batch(mid, metrics=[*history, *(Metric(k, v, 0, step) for k, v in values.items())],
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
    md = (tmp_path / "reports" / "bench_scale" / "report.md").read_text()
    assert f"Runs with results: {n} of {n} expected." in md and "![Exact match at 3 digits vs examples seen](history.png)" in md
    assert "POOLED (not a row, column or `where`): optimizer.lr" in md and "Averaged on purpose (`pool`): training.batch_size (8 values)" in md
    sql_s, slow_s = history_reads(uri)
    print(f"\n[bench] {n} finished runs (written in {made:.0f} s): harness run (trains nothing) {run_s:.1f} s "
          f"({run_s - imports:.1f} s after imports), harness report with a history figure {report_s:.1f} s "
          f"({report_s - imports:.1f} s after imports); imports alone {imports:.1f} s; history of {n} runs: "
          f"SQL {sql_s:.2f} s, get_metric_history per run {slow_s:.1f} s (x{slow_s / sql_s:.0f})")


def history_reads(uri: str) -> tuple[float, float]:
    """(seconds of Tracker.histories over every run, seconds of get_metric_history per run and metric scaled
    from the first 200 runs)."""
    t = Tracker(uri)
    mids = list(t.finished(t.experiment_id("bench_scale")).values())
    keys = ["exact/len_03", "examples_seen"]
    t0 = time.perf_counter()
    fast = t.histories(mids, keys)
    sql_s = time.perf_counter() - t0
    assert sum(len(v) for v in fast.values()) == len(mids) * len(HISTORY_STEPS) * len(keys)
    t0 = time.perf_counter()
    for m in mids[:200]:
        t.history(m, keys)
    return sql_s, (time.perf_counter() - t0) * len(mids) / 200
