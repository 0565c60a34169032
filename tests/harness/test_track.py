"""The tracking layer on its own: the store layout of every kind of URI, the SQL fast path against
MLflow's search_runs, the newest parent run, and the time a RunLog spends in tracking calls."""

import math
from pathlib import Path

import pytest

from harness.store import StoreLayout, default_uri
from harness.tags import Kind, Status, Tag
from harness.track import RunLog, Tracker


@pytest.mark.parametrize("uri, db, root", [
    ("sqlite:////abs/dir/mlflow.db", "/abs/dir/mlflow.db", "/abs/dir"),
    ("sqlite:///rel/m.db", "{cwd}/rel/m.db", "{cwd}/rel"),
    ("sqlite:///m.db", "{cwd}/m.db", "{cwd}"),
    ("http://127.0.0.1:5000", None, "{cwd}"),
    ("postgresql://user@db:5432/mlflow", None, "{cwd}"),
    ("file:///tmp/mlruns", None, "{cwd}"),
    ("sqlite:///:memory:", None, "{cwd}"),
])
def test_store_layout_of_each_kind_of_uri(uri, db, root, tmp_path):
    lay = StoreLayout.from_uri(uri, cwd=tmp_path)
    fill = lambda s: None if s is None else Path(s.format(cwd=tmp_path.resolve()))  # noqa: E731
    assert lay.sqlite_db == fill(db) and lay.root == fill(root)
    assert lay.state_dir == lay.root / ".harness" and lay.lock_path("s") == lay.root / ".harness" / "locks" / "s.lock"
    assert lay.log_dir("s") == lay.state_dir / "logs" / "s" and lay.checkpoint_dir("s") == lay.state_dir / "checkpoints" / "s"
    if db is None:  # a server or another store decides where artifacts go; the journal lives in the state dir
        assert lay.artifact_location("e") is None and lay.artifacts_dir is None
        assert lay.journal == lay.state_dir / "optuna-journal.log"
    else:
        assert lay.artifact_location("e") == (lay.root / "mlartifacts" / "e").as_uri()
        assert lay.journal == lay.root / "optuna-journal.log"


def test_default_uri_is_mlflow_db_in_the_working_directory(tmp_path):
    assert default_uri(tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert StoreLayout.from_uri(default_uri(tmp_path)).sqlite_db == tmp_path.resolve() / "mlflow.db"


def _store(tmp_path: Path) -> tuple[Tracker, str, dict[str, str]]:
    """A store with every case results() must tell apart; returns (tracker, experiment id, names -> ids)."""
    t = Tracker(f"sqlite:///{tmp_path}/mlflow.db")
    t.setup()
    exp = t.experiment("s")
    parent = t.start_parent(exp, "p", {Tag.KIND: Kind.INVOCATION})
    ids = {}

    def run(name: str, run_id: str, status: str, metrics: dict, extra: dict | None = None) -> None:
        ids[name] = t.create_child(exp, parent, name, {Tag.RUN_ID: run_id, **(extra or {})})
        log = RunLog(t.uri, ids[name])
        log.log_params({"model.name": "transformer", "seed": 1})
        log.log_metrics(metrics, 10)
        log.set_tags({Tag.OUTCOME: "finished"})
        log.finish(status)

    run("a0", "a", Status.FINISHED, {"acc": 0.1})
    run("a1", "a", Status.FINISHED, {"acc": 0.2, "nan": math.nan})  # a later attempt: the newest wins
    run("b", "b", Status.FAILED, {"acc": 0.3})
    run("c-trial", "c", Status.FINISHED, {"acc": 0.4}, {Tag.KIND: Kind.TRIAL})
    run("d", "d", Status.FINISHED, {"acc": 0.5})
    run("e", "e", Status.FINISHED, {"acc": 0.6})
    t.client.delete_run(ids["e"])  # deleted in the UI: not a result
    run("f", "f", Status.KILLED, {"acc": 0.7})
    return t, exp, ids


def _records(recs):
    return sorted((r.mlflow_id, r.run_id, str(r.status), r.params, r.tags, {k: "nan" if math.isnan(v) else v for k, v in r.metrics.items()})
                   for r in recs)


def test_sql_fast_path_reads_what_search_runs_reads(tmp_path):
    t, exp, ids = _store(tmp_path)
    fast, slow = t.results(exp), t._results_via_search(exp, None)
    assert _records(fast) == _records(slow)
    assert {r.run_id: r.mlflow_id for r in fast} == {"a": ids["a1"], "d": ids["d"]}
    assert t.finished(exp) == {"a": ids["a1"], "d": ids["d"]}
    a1 = next(r for r in fast if r.run_id == "a")
    assert a1.params == {"model.name": "transformer", "seed": "1"} and a1.metrics["acc"] == 0.2 and math.isnan(a1.metrics["nan"])
    assert _records(t.results(exp, ["d", "zz"])) == _records(t._results_via_search(exp, ["d", "zz"]))


def test_newest_parent_is_found_by_its_kind_and_in_an_old_store_without_it(tmp_path):
    t, exp, _ = _store(tmp_path)
    newer = t.start_parent(exp, "p2", {Tag.KIND: Kind.INVOCATION, "command": "x"})
    assert t.newest_parent(exp).mlflow_id == newer
    old = Tracker(f"sqlite:///{tmp_path}/old.db")
    old.setup()
    exp2 = old.experiment("s")
    legacy = old.start_parent(exp2, "legacy", {"command": "y"})  # written before the kind tag existed
    old.create_child(exp2, legacy, "r", {Tag.RUN_ID: "a"})
    assert old.newest_parent(exp2).mlflow_id == legacy


def test_runlog_counts_the_time_of_its_tracking_calls(tmp_path):
    t = Tracker(f"sqlite:///{tmp_path}/mlflow.db")
    t.setup()
    exp = t.experiment("s")
    mid = t.create_child(exp, t.start_parent(exp, "p", {}), "r", {})
    log = RunLog(t.uri, mid)
    before = log.seconds
    log.log_params({"a": 1})
    for step in range(5):
        log.log_metrics({"loss": 1.0}, step)
    assert log.seconds > before  # log_params went to the store
    buffered = log.seconds
    log.finish(Status.FINISHED)
    assert log.seconds > buffered and len(t.client.get_metric_history(mid, "loss")) == 5


def test_a_sigterm_during_a_tracking_write_is_delivered_after_it(tmp_path):
    """The worker's SIGTERM handler raises; raised inside a write it would leave the connection mid-transaction
    (holding the database's lock).  RunLog holds the signal back until the write returns, then it arrives."""
    import os
    import signal

    t = Tracker(f"sqlite:///{tmp_path}/mlflow.db")
    t.setup()
    exp = t.experiment("s")
    mid = t.create_child(exp, t.start_parent(exp, "p", {}), "r", {})
    log = RunLog(t.uri, mid)
    client = log.tracker.client
    write = client.log_batch
    seen: list[str] = []

    class Stop(BaseException):
        pass

    def log_batch(*args, **kwargs):  # the signal arrives in the middle of the store's write
        os.kill(os.getpid(), signal.SIGTERM)
        seen.append("killed")
        write(*args, **kwargs)
        seen.append("written")

    def on_term(signum, frame):
        seen.append("handler")
        raise Stop

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        client.log_batch = log_batch
        for step in range(3):
            log.log_metrics({"loss": float(step)}, step)
        with pytest.raises(Stop):
            log.flush()
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert seen == ["killed", "written", "handler"]
    assert log._buf == []  # the chunk left the buffer before the signal: a later flush does not write it twice
    del client.log_batch
    log.finish(Status.KILLED)  # the store is not left locked: the KILLED record goes through
    assert [m.value for m in t.client.get_metric_history(mid, "loss")] == [0.0, 1.0, 2.0]
    assert t.client.get_run(mid).info.status == "KILLED"


def test_sql_histories_read_what_get_metric_history_reads(tmp_path):
    t, exp, ids = _store(tmp_path)
    log = RunLog(t.uri, ids["d"])
    for step in (20, 30):
        log.log_metrics({"acc": step / 100, "examples_seen": step * 8.0}, step)
    log.log_metrics({"acc": math.nan}, 40)
    log.flush()
    mids = [ids["a1"], ids["d"], ids["b"]]
    fast = t.histories(mids, ["acc", "examples_seen", "absent"])
    slow = {m: [(k, s, v) for k, pts in t.history(m, ["acc", "examples_seen", "absent"]).items() for s, v in pts] for m in mids}

    def norm(h):
        return {m: sorted((k, s, "nan" if math.isnan(v) else v) for k, s, v in pts) for m, pts in h.items()}

    assert norm(fast) == norm(slow)
    assert norm(fast)[ids["d"]] == sorted([("acc", 10, 0.5), ("acc", 20, 0.2), ("acc", 30, 0.3), ("acc", 40, "nan"),
                                           ("examples_seen", 20, 160.0), ("examples_seen", 30, 240.0)])


def test_latest_run_of_every_run_id_whatever_its_status(tmp_path):
    t, exp, ids = _store(tmp_path)
    latest = t.latest(exp)
    assert {k: v[:2] for k, v in latest.items()} == {"a": (ids["a1"], "FINISHED"), "b": (ids["b"], "FAILED"),
                                                     "d": (ids["d"], "FINISHED"), "f": (ids["f"], "KILLED")}


def _schema(db: Path) -> tuple[list, list]:
    import sqlite3

    with sqlite3.connect(db) as con:
        tables = con.execute("SELECT name, sql FROM sqlite_master WHERE type IN ('table', 'index') ORDER BY name").fetchall()
        version = con.execute("SELECT version_num FROM alembic_version").fetchall()
    # each table's columns and constraints as a set: alembic's batch migrations emit a table's constraints in
    # an order that differs between two stores MLflow itself migrated (seen in CI: the runs table)
    return [(name, sorted(line.strip().rstrip(",") for line in (sql or "").splitlines())) for name, sql in tables], version


def test_a_new_store_is_a_copy_of_a_migrated_template_with_the_same_schema(tmp_path, monkeypatch):
    from harness.track import template

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HARNESS_STORE_TEMPLATE", "off")
    Tracker(f"sqlite:///{tmp_path}/plain/mlflow.db").setup()  # the MLflow way: every migration replayed
    assert not template.template_path().exists()
    monkeypatch.delenv("HARNESS_STORE_TEMPLATE")
    for name in ("first", "second"):  # the first makes the template, the second is only a copy of it
        t = Tracker(f"sqlite:///{tmp_path}/{name}/mlflow.db")
        t.setup()
        exp = t.experiment("s")
        assert t.client.get_experiment(exp).artifact_location == StoreLayout.from_uri(t.uri).artifact_location("s")
        default = t.client.get_experiment("0")  # re-created by MLflow where this store is opened
        assert default.name == "Default" and default.artifact_location == str(tmp_path / "mlruns" / "0")
        assert _schema(tmp_path / name / "mlflow.db") == _schema(tmp_path / "plain" / "mlflow.db")
    assert template.template_path().exists()
    assert [e.name for e in Tracker(f"sqlite:///{tmp_path}/second/mlflow.db").client.search_experiments()] == ["s", "Default"]
    assert not list(tmp_path.glob("*/.*.part"))
