"""The harness against the tool it replaces (`make bench`): the smoke suite's 4 runs at 150 steps as
`harness run --workers 2` and as a Hydra multirun (hydra-core with the joblib launcher, 2 jobs) of
benchmarks/hydra_app/app.py, which builds and trains the same runs with the same components and logs
every metric value to MLflow.  Both write a store that already has MLflow's schema (a copy of one made
outside the timing: two joblib workers creating a new sqlite store at once race on its schema), so the
times compare the runs, not the one-time schema creation.  Median of 3 fresh processes each; prints the
ratio harness / hydra.  No timed assertions."""

import shutil
import sys
from pathlib import Path

import pytest
import yaml
from timing import median_wall, show

from harness.spec import load_and_expand
from harness.track import Tracker

pytestmark = pytest.mark.bench

ROOT = Path(__file__).resolve().parents[1]
SUITE = str(ROOT / "suites" / "smoke.yaml")
STEPS = "defaults.training.steps=150"


def test_harness_vs_hydra_multirun(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    template = tmp_path / "template.db"
    made = Tracker(f"sqlite:///{template}")
    made.setup()
    made.experiment("hydra_smoke")  # two joblib workers creating it at once would race too
    _, runs = load_and_expand(SUITE, [STEPS])
    base = runs[0].config.model_dump(mode="json")
    assert {(r.config.model.pos_emb, r.config.seed) for r in runs} == {("abs", 0), ("abs", 1), ("rel_k", 0), ("rel_k", 1)}

    def fresh(d: Path) -> str:
        shutil.copy(template, d / "mlflow.db")
        (d / "config.yaml").write_text(yaml.safe_dump({"run": base, "tracking_uri": f"sqlite:///{d}/mlflow.db"}))
        return f"sqlite:///{d}/mlflow.db"

    def harness(d: Path) -> list[str]:
        return [sys.executable, "-m", "harness.cli", "run", SUITE, STEPS, "--workers", "2", "--no-report",
                "--tracking-uri", fresh(d), "--reports-dir", str(d / "reports")]

    def hydra(d: Path) -> list[str]:
        fresh(d)
        return [sys.executable, str(ROOT / "benchmarks" / "hydra_app" / "app.py"), "--config-dir", str(d), "--config-name", "config",
                "-m", "run.model.pos_emb=abs,rel_k", "run.seed=0,1", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                f"hydra.sweep.dir={d}/multirun"]

    def four_runs(experiment: str):
        def check(d: Path, proc) -> None:
            t = Tracker(f"sqlite:///{d}/mlflow.db")
            found = t.client.search_runs([t.experiment_id(experiment)], "attributes.status = 'FINISHED'")
            assert len([r for r in found if r.data.metrics.get("exact/len_03") is not None]) == 4
        return check

    ours = median_wall(harness, tmp_path / "harness", check=four_runs("smoke"))
    theirs = median_wall(hydra, tmp_path / "hydra", check=four_runs("hydra_smoke"))
    print(f"\n[bench] 4 smoke runs x 150 steps, 2 workers, wall (median of 3): harness run {show(ours)}, "
          f"hydra multirun (joblib, 2 jobs) {show(theirs)}")
    print(f"[bench] harness / hydra multirun = {ours[0] / theirs[0]:.2f}")
