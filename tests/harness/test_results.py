"""The results a researcher browses: run names and cells, `harness results` (parquet / csv), `harness status`
(finished / stale / failed / missing, --rerun-stale), provenance tags (the checkout's commit, dirty diff,
lock hash, MLflow's source / user / note tags, the dataset input), --require-clean, seeds until decided, and
determinism (one run trained twice in separate processes gives bit-identical metrics)."""

import math
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from conftest import TINY_SUITE, child_runs, cli

from harness import pipeline, provenance
from harness.orchestrate import SuiteOutcome, run_tags
from harness.report.status import FAILED, FINISHED, MISSING, STALE, run_states
from harness.session import suite_tags
from harness.spec import load_and_expand
from harness.tags import Kind, Outcome, Status, Tag
from harness.track import RunLog, Tracker


def test_run_names_lead_with_what_varies_and_cells_drop_the_seed(root):
    _, runs = load_and_expand(root / "suites" / "jepa_vs_mae.yaml")
    names = {r.name for r in runs}
    assert "task=shapes method=mae ratio=0.9 seed=1" in names and "untrained_digits seed=0" in names
    r = next(r for r in runs if r.name == "task=shapes method=mae ratio=0.9 seed=1")
    assert r.cell == "task=shapes method=mae ratio=0.9" and run_tags(r, None, 0)[Tag.CELL] == r.cell
    assert run_tags(r, None, 0)[Tag.ABLATION] == "none"
    assert len({x.cell for x in runs}) == len(runs) // 3  # three seeds per cell
    _, staged = load_and_expand(root / "suites" / "smoke_stages.yaml")
    ext = next(x for x in staged if x.stage == "extend")
    assert ext.name == "extend lr=0.001 seed=0 <- pos_emb=abs seed=0" and ext.cell == "extend lr=0.001 <- pos_emb=abs"


def populate(tmp_path: Path, text: str, metrics, statuses=None) -> tuple[str, list, str]:
    """A store holding every run of the suite `text` as the harness writes it (nothing trained): metrics(run)
    -> final metrics; statuses: run index -> status (default FINISHED)."""
    suite = tmp_path / "t.yaml"
    suite.write_text(text)
    loaded, runs = load_and_expand(suite)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    t = Tracker(uri)
    t.setup()
    exp = t.experiment(loaded.spec.name)
    parent = t.start_parent(exp, "p", {**suite_tags(loaded.spec.name), Tag.KIND: Kind.INVOCATION})
    for i, r in enumerate(runs):
        write_run(t, exp, parent, r, metrics(r), (statuses or {}).get(i, Status.FINISHED))
    return uri, runs, str(suite)


def write_run(t: Tracker, exp: str, parent: str, r, metrics: dict, status: str = Status.FINISHED, sha: str | None = None,
              fingerprint: str | None = None) -> str:
    """A run as the harness writes it; `sha` / `fingerprint`: another commit / code than now ("": no fingerprint tag,
    as before fingerprints existed)."""
    tags = {**suite_tags(r.suite), **run_tags(r, None, 0)} | ({Tag.GIT_SHA: sha} if sha else {})
    if fingerprint is not None:
        tags = {k: v for k, v in tags.items() if k != Tag.CODE_FINGERPRINT} | ({Tag.CODE_FINGERPRINT: fingerprint} if fingerprint else {})
    mid = t.create_child(exp, parent, r.name, tags)
    log = RunLog(t.uri, mid)
    log.log_params(r.config.flat())
    log.set_tags({Tag.OUTCOME: Outcome.FINISHED})
    for step in (10, 20):
        log.log_metrics({k: v * step / 20 for k, v in metrics.items()}, step)
    log.finish(status)
    return mid


GRID = TINY_SUITE + "grid:\n  model.pos_emb: [abs, rel_k]\n  task.train_digits: [[1, 3], [1, 4]]\nseeds: [0, 1]\n"


def test_results_export_parquet_and_csv_keep_the_suites_values(tmp_path, capsys):
    from harness.cli import main

    uri, runs, suite = populate(tmp_path, GRID, lambda r: {"exact/len_03": 0.5 + 0.1 * r.config.seed})
    out = tmp_path / "out" / "r.parquet"
    assert main(["results", suite, "--out", str(out), "--tracking-uri", uri]) == 0
    assert capsys.readouterr().out.split() == [str(out), str(out.with_name("r.history.parquet"))]
    frame, hist = pl.read_parquet(out), pl.read_parquet(out.with_name("r.history.parquet"))
    assert frame.height == 8 and frame.schema["task.train_digits"] == pl.List(pl.Int64)
    assert sorted(frame["task.train_digits"].to_list()) == [[1, 3]] * 4 + [[1, 4]] * 4
    assert {"run_id", "mlflow_id", "name", "cell", "seed", "outcome", "exact/len_03"} <= set(frame.columns)
    assert hist.columns == ["run_id", "metric", "step", "value"] and hist.height == 16
    assert main(["results", suite, "--out", str(tmp_path / "r.csv"), "--format", "csv", "--tracking-uri", uri]) == 0
    csv = pl.read_csv(tmp_path / "r.csv")
    assert csv.height == 8 and set(csv["task.train_digits"]) == {"[1, 3]", "[1, 4]"}
    res = pipeline.results(pipeline.load(suite), uri)
    assert res.frame.to_pandas().shape[0] == 8  # polars; pandas one call away


def test_status_tells_finished_stale_failed_and_missing(tmp_path):
    uri, runs, suite = populate(tmp_path, GRID, lambda r: {"m": 1.0}, statuses={1: Status.FAILED})
    t = Tracker(uri)
    exp = t.experiment_id("t")
    now = provenance.code_version().commit
    states = {s.run.run_id: s.state for s in run_states("t", runs, t, commit=now)}
    assert states[runs[1].run_id] == FAILED and sum(v == FINISHED for v in states.values()) == 7
    parent = t.newest_parent(exp).mlflow_id
    moved = write_run(t, exp, parent, runs[3], {"m": 1.0}, sha="0" * 40)  # another commit, the same code: still finished
    states = {s.run.run_id: (s.state, s.mlflow_id) for s in run_states("t", runs, t, commit=now)}
    assert states[runs[3].run_id] == (FINISHED, moved)
    stale = write_run(t, exp, parent, runs[2], {"m": 1.0}, fingerprint="0" * 16)  # its code changed since
    old = write_run(t, exp, parent, runs[4], {"m": 1.0}, sha="0" * 40, fingerprint="")  # no fingerprint: the commit decides
    states = {s.run.run_id: s for s in run_states("t", runs, t, commit=now)}
    assert (states[runs[2].run_id].state, states[runs[2].run_id].mlflow_id) == (STALE, stale)
    assert "its code changed since it ran (fingerprint 0000000000000000 -> " in states[runs[2].run_id].why
    assert (states[runs[4].run_id].state, states[runs[4].run_id].mlflow_id) == (STALE, old) and "finished by commit" in states[runs[4].run_id].why
    _, more = load_and_expand(Path(suite), ["seeds=[0,1,2]"])
    assert {s.state for s in run_states("t", more, t, commit=now) if s.run.config.seed == 2} == {MISSING}


def test_require_clean_refuses_a_dirty_checkout(tmp_path, monkeypatch, capsys):
    from harness.cli import main

    dirty = provenance.CodeVersion("abc", True, "diff --git a b", "f00", str(tmp_path))
    monkeypatch.setattr(provenance, "code_version", lambda: dirty)
    suite = tmp_path / "t.yaml"
    suite.write_text(TINY_SUITE)
    rc = main(["run", str(suite), "--require-clean", "--tracking-uri", f"sqlite:///{tmp_path}/m.db", "--reports-dir", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1].startswith("error: the harness checkout") and "uncommitted changes (--require-clean)" in err[-1]
    assert not (tmp_path / "m.db").exists() and not (tmp_path / "t").exists()  # nothing written


UNDECIDED = TINY_SUITE + """grid:
  model.pos_emb: [abs, rel_k]
seeds: [0, 1]
claims:
  - id: rel_k_wins
    text: rel_k beats abs
    until_decided: {max_seeds: 6, step: 2}
    check: {kind: beats, metric: m, a: {where: {model.pos_emb: rel_k}}, b: {where: {model.pos_emb: abs}}}
"""


def test_seeds_until_decided_adds_seeds_to_the_claims_runs_while_inconclusive(tmp_path, monkeypatch):
    """rel_k - abs is 0.1 + noise that shrinks with the seed: inconclusive on seeds 0, 1, decided by seeds 0-3."""
    def metric(r):
        noise = [0.02, -0.02, 0.01, -0.01, 0.0, 0.0][r.config.seed]
        return {"m": 0.5 + (0.1 + noise if r.config.model.pos_emb == "rel_k" else 0.0)}

    uri, runs, suite_path = populate(tmp_path, UNDECIDED, metric)
    t = Tracker(uri)
    exp = t.experiment_id("t")
    trained: list[list[str]] = []

    def fake_run_suite(spec, todo, tracker, session, pool, console, rerun=frozenset()):  # "trains" by writing the runs
        trained.append(sorted(r.name for r in todo))
        for r in todo:
            write_run(tracker, exp, tracker.newest_parent(exp).mlflow_id, r, metric(r))
        return SuiteOutcome(total=len(todo), skipped=0, finished=[r.name for r in todo])

    monkeypatch.setattr(pipeline, "run_suite", fake_run_suite)
    suite = pipeline.load(suite_path, check=False)  # its metric 'm' is written by the test, not declared by a method
    from rich.console import Console

    outcomes = pipeline.until_decided(suite, suite.runs, t, None, None, Console(quiet=True))
    assert trained == [["pos_emb=abs seed=2", "pos_emb=abs seed=3", "pos_emb=rel_k seed=2", "pos_emb=rel_k seed=3"]]
    assert len(outcomes) == 1
    claim = pipeline.report(suite, uri, reports_dir=tmp_path / "reports").claims[0]  # a later report reads the extra seeds
    assert claim.status == "PASS" and "(4 seeds)" in claim.measured
    assert "Runs with results: 8 of 8 expected." in (tmp_path / "reports" / "t" / "report.md").read_text()


ROOT = Path(__file__).resolve().parents[2]
SMOKE = str(ROOT / "suites" / "smoke.yaml")


@pytest.fixture(scope="module")
def smoke_stores(tmp_path_factory):
    """The smoke suite run into two stores by two invocations (separate orchestrators, workers and processes)."""
    stores = []
    for name in ("a", "b"):
        where = tmp_path_factory.mktemp(name)
        proc = cli(ROOT, where, "run", SMOKE, "--workers", "2")
        assert proc.returncode == 0, proc.stderr
        stores.append(where)
    return stores


@pytest.mark.slow
def test_provenance_tags_dataset_and_bit_identical_reruns(root, smoke_stores):
    """Every run's final metrics are bit-identical across the two stores; each run carries the checkout's
    commit, MLflow's standard tags, its cell, its description and its dataset input; `harness status` and the
    report link the runs."""
    suite = SMOKE
    a, b = smoke_stores
    ca, _ = child_runs(a, "smoke")
    cb, _ = child_runs(b, "smoke")
    ma = {r.data.tags["run_id"]: r.data.metrics for r in ca}
    mb = {r.data.tags["run_id"]: r.data.metrics for r in cb}
    assert ma.keys() == mb.keys() and len(ma) == 4
    for rid in ma:  # bit-identical: == on every float, except the wall-clock ones
        same = {k: v for k, v in ma[rid].items() if not k.startswith(("time/", "throughput/"))}
        assert same == {k: v for k, v in mb[rid].items() if not k.startswith(("time/", "throughput/"))}, rid
        assert not any(math.isnan(v) for v in same.values())
    code = provenance.code_version()
    t = Tracker(f"sqlite:///{a}/mlflow.db")
    for r in ca:
        tags = r.data.tags
        assert tags[Tag.GIT_SHA] == tags[Tag.SOURCE_COMMIT] == code.commit and tags[Tag.GIT_DIRTY] == str(code.dirty).lower()
        assert tags[Tag.SOURCE_NAME] == suite and tags[Tag.USER] and tags[Tag.LOCK_SHA] == code.lock_sha256
        assert tags[Tag.CELL] == r.info.run_name.rsplit(" seed=", 1)[0] and tags[Tag.ABLATION] == "none"
        assert f"Suite `smoke`, cell `{tags[Tag.CELL]}`" in tags[Tag.NOTE]
        (ds,) = t.client.get_run(r.info.run_id).inputs.dataset_inputs
        assert ds.dataset.name == "arithmetic" and len(ds.dataset.digest) == 16
        assert code.dirty == (Tag.GIT_DIRTY in tags and "code" in {x.path for x in t.client.list_artifacts(r.info.run_id)})
    exp = t.client.get_experiment_by_name("smoke")
    assert exp.tags[Tag.NOTE].startswith("Two position embeddings x two seeds")
    status = cli(root, a, "status", suite)
    assert status.returncode == 0 and "4 finished" in status.stdout, status.stdout + status.stderr
    html = (a / "reports" / "smoke" / "report.html").read_text()
    assert html.count('href="http://127.0.0.1:5000/#/experiments/') == 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _chromium(*args: str, timeout: int = 90, width: int = 1400) -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("no chromium on PATH (.ci/run installs Debian's package)")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--virtual-time-budget=20000", f"--window-size={width},900"]
    out = subprocess.run([exe, *flags, *args], capture_output=True, text=True, timeout=timeout)
    return out.stdout


ARTIFACTS = Path(os.environ.get("HARNESS_TEST_ARTIFACTS", ROOT / "test-artifacts"))


@pytest.mark.slow
def test_browser_shows_run_names_cell_groups_and_the_report(smoke_stores, tmp_path):
    """`harness ui` over the smoke store, opened in headless Chromium: the runs page (its printed link, grouped
    by cell) shows the run names and one group per cell, the parent run's artifacts show report/report.html;
    a screenshot of the runs page is kept in test-artifacts/ ($HARNESS_TEST_ARTIFACTS)."""
    store = smoke_stores[0]
    uri = f"sqlite:///{store}/mlflow.db"
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_DISABLE_TELEMETRY": "true"}
    ui = subprocess.Popen([sys.executable, "-m", "harness.cli", "ui", "--tracking-uri", uri, "--port", str(port)],
                          stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env, cwd=tmp_path)
    try:
        lines, deadline = [], time.monotonic() + 150
        while time.monotonic() < deadline and (line := ui.stderr.readline()):
            lines.append(line)
            if "(Ctrl-C stops it)" in line:
                break
        links = [ln.split()[1] for ln in lines if ln.strip().startswith("smoke:")]
        assert links and links[0].endswith("/runs?viewStateShareKey=harness-cells"), "".join(lines[-20:])
        dom = _chromium("--user-data-dir=" + str(tmp_path / "p1"), "--dump-dom", links[0], width=3200)  # the grid renders visible columns only
        children, parents = child_runs(store, "smoke")
        for r in children:
            assert r.info.run_name in dom  # e.g. "pos_emb=abs seed=0"
        assert "Group by: cell" in dom, dom[-2000:]  # the shared view the harness stores: grouped by the cell tag
        # ... showing the suite's axis and its report's metrics as columns (without them the UI hides all 92)
        headers = {h.split("<")[0] for h in dom.split(">")}
        assert {"model.pos_emb", "exact/len_03", "token_acc/len_06"} <= headers, sorted(h for h in headers if "/" in h)[:40]
        assert {f"Group: {c}" for c in ("pos_emb=abs", "pos_emb=rel_k")} <= set(
            g.split("<")[0] for g in dom.split(">") if g.startswith("Group: ")), "no cell groups in the runs page"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "mlflow_runs_grouped_by_cell.png"
        _chromium("--user-data-dir=" + str(tmp_path / "p2"), f"--screenshot={shot}", links[0])
        assert shot.stat().st_size > 10_000
        exp = Tracker(uri).client.get_experiment_by_name("smoke").experiment_id
        page = f"http://127.0.0.1:{port}/#/experiments/{exp}/runs/{parents[0].info.run_id}/artifacts/report/report.html"
        art = _chromium("--user-data-dir=" + str(tmp_path / "p3"), "--dump-dom", page)
        assert "report.html" in art and "tables.tex" in art, art[-2000:]
    finally:
        ui.terminate()
        ui.wait(timeout=60)


@pytest.mark.slow
def test_optuna_dashboard_serves_the_studies_of_a_journal(tmp_path):
    """`harness ui --optuna` over a journal file (the harness's default storage): once it prints its link the
    dashboard answers with the journal's study."""
    import json
    import urllib.request

    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    journal = tmp_path / "optuna-journal.log"
    study = optuna.create_study(study_name="t/lr/model.pos_emb=abs/0", storage=JournalStorage(JournalFileBackend(str(journal))))
    study.optimize(lambda t: t.suggest_float("lr", 1e-4, 1e-2, log=True), n_trials=2)
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    ui = subprocess.Popen([sys.executable, "-m", "harness.cli", "ui", "--optuna", "--storage", str(journal), "--port", str(port)],
                          stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env, cwd=tmp_path)
    try:
        lines, deadline = [], time.monotonic() + 90
        while time.monotonic() < deadline and (line := ui.stderr.readline()):
            lines.append(line)
            if "(Ctrl-C stops it)" in line:
                break
        assert any(f"http://127.0.0.1:{port}/dashboard" in ln for ln in lines), "".join(lines[-10:])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=10) as r:
            names = [s["study_name"] for s in json.load(r)["study_summaries"]]
        assert names == ["t/lr/model.pos_emb=abs/0"]
    finally:
        ui.terminate()
        ui.wait(timeout=60)


def test_the_dirty_flag_reads_the_code_only(tmp_path):
    """A report, a suite or a store written next to the code does not make the checkout dirty; an edit to the code
    does, and its diff names only the code."""
    import subprocess

    from harness import provenance

    def git(*a):
        subprocess.run(["git", *a], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "harness").mkdir()
    (tmp_path / "reports").mkdir()
    (tmp_path / "harness" / "m.py").write_text("x = 1\n")
    (tmp_path / "reports" / "r.md").write_text("old\n")
    git("init", "-q")
    git("-c", "user.email=a@b", "-c", "user.name=a", "add", ".")
    git("-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "c")
    (tmp_path / "reports" / "r.md").write_text("new\n")  # a regenerated report
    (tmp_path / "mlflow.db").write_text("")  # a store
    assert not provenance.version_of(tmp_path).dirty
    (tmp_path / "harness" / "m.py").write_text("x = 2\n")
    v = provenance.version_of(tmp_path)
    assert v.dirty and "harness/m.py" in v.diff and "reports" not in v.diff


def test_the_fingerprint_reads_what_the_code_computes_not_its_comments_or_layout(tmp_path):
    """A comment, a blank line, a docstring or a re-wrapped line (a lint fix) leaves finished runs fresh; a
    changed value or statement makes them stale."""
    from harness.provenance import fingerprint_of

    f = tmp_path / "m.py"

    def fp(src: str) -> str:
        f.write_text(src)
        return fingerprint_of([tmp_path], tmp_path)

    base = fp('"""Doc."""\nimport os\n\nimport sys\n\n\ndef g(a,\n      b):\n    """x"""\n    return a + b\n')
    assert fp('"""Another doc."""\nimport os\nimport sys  # sorted\n\n\ndef g(a, b):\n    return a + b\n') == base
    assert fp('"""Doc."""\nimport os\nimport sys\n\n\ndef g(a, b):\n    return a - b\n') != base
    assert fp('import sys\nimport os\n\n\ndef g(a, b):\n    return a + b\n') != base  # import order can matter
    assert fp("def g(:\n") != fp("def g(:  \n")  # a file that does not parse counts by its bytes


@pytest.mark.slow
def test_a_code_change_makes_finished_runs_stale_and_rerun_stale_retrains_them(root, tmp_path):
    """Runs record the fingerprint of the code their result depends on (here a plugin package's, edited and not
    committed anywhere); status names the stale runs and why, run keeps them and says so, --rerun-stale and
    --force retrain."""
    from conftest import child_runs, cli

    plug = tmp_path / "plugs" / "myplug"
    plug.mkdir(parents=True)
    (plug / "__init__.py").write_text("SCALE = 1.0\n")
    env = {"HARNESS_PLUGINS": "myplug", "PYTHONPATH": str(tmp_path / "plugs")}
    suite = str(root / "suites" / "smoke.yaml")
    assert cli(root, tmp_path, "run", suite, "--no-report", env=env).returncode == 0
    status = cli(root, tmp_path, "status", suite, env=env)
    assert "smoke: 4 finished" in status.stdout and "stale │" not in status.stdout
    (plug / "__init__.py").write_text("SCALE = 2.0  # the plugin's code changed\n")
    status = cli(root, tmp_path, "status", suite, env=env)
    assert "smoke: 4 stale" in status.stdout and "its code changed since it ran" in status.stdout
    again = cli(root, tmp_path, "run", suite, "--no-report", env=env)
    assert again.returncode == 0 and "4 already finished, 0 to run" in again.stderr and "4 finished runs are stale" in again.stderr
    assert "--rerun-stale" in again.stderr
    rerun = cli(root, tmp_path, "run", suite, "--no-report", "--rerun-stale", env=env)
    assert rerun.returncode == 0 and "0 already finished, 4 to run" in rerun.stderr
    assert "smoke: 4 finished" in cli(root, tmp_path, "status", suite, env=env).stdout  # fresh again
    forced = cli(root, tmp_path, "run", suite, "--no-report", "--force", env=env)
    assert forced.returncode == 0 and "0 already finished, 4 to run" in forced.stderr
    children, _ = child_runs(tmp_path, "smoke")
    assert len(children) == 12 and len({c.data.tags["code_fingerprint"] for c in children}) == 2


def test_files_a_run_writes_next_to_the_code_are_ignored_by_git(root):
    """The store, its lock, the Optuna journal, logs and exports of `make suite` / `harness results` are ignored:
    a first suite no longer makes the checkout dirty for --require-clean (the reports themselves are tracked
    on purpose, and the dirty flag reads the code only: test_the_dirty_flag_reads_the_code_only)."""
    import subprocess

    names = ["mlflow.db", "mlflow.db.lock", "optuna-journal.log", "mlartifacts/1/x", ".harness/logs/x.log", "smoke_results.parquet",
             "smoke_results.history.parquet", "smoke_results.csv"]
    out = subprocess.run(["git", "check-ignore", *names], cwd=root, capture_output=True, text=True)
    assert sorted(out.stdout.split()) == sorted(names)
    tracked = subprocess.run(["git", "ls-files", "mlflow.db.lock"], cwd=root, capture_output=True, text=True).stdout
    assert tracked == ""  # the stray lock file is no longer committed
