"""Column queries on an SQL tracking store (sqlite, PostgreSQL, MySQL: MLflow's SqlAlchemyStore), for
what the harness reads in bulk: which run_ids have FINISHED, their final metrics, params and tags, the
newest run of every run_id whatever its status (`harness status`), and metric histories (report figures).

`MlflowClient.search_runs` builds an MLflow entity (and an ORM object per param, tag and metric) for every
run: with 1,000 runs of ~50 params that is ~3 s; these queries read the same columns through MLflow's
own table models in ~0.1 s.  They use MLflow's table models (`mlflow.store.tracking.dbmodels.models`),
not its public API: `tests/harness/test_track.py` checks them against `search_runs` on the same store, so
an MLflow upgrade that changes the tables fails a test instead of a report.  Other stores (an MLflow
server over HTTP) are read through `search_runs`."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlParam, SqlRun, SqlTag
from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import aliased

from harness.tags import Kind, Status, Tag

CHUNK = 500  # ids per IN (...) clause


@dataclass(frozen=True)
class Finished:
    mlflow_id: str
    run_id: str
    start_time: int


def sql_store(client: Any) -> SqlAlchemyStore | None:
    """The client's SqlAlchemyStore, or None for other stores."""
    store = client._tracking_client.store  # MLflow keeps the store on its tracking client
    return store if isinstance(store, SqlAlchemyStore) else None


def _chunks(ids: list[str]) -> Iterator[list[str]]:
    for i in range(0, len(ids), CHUNK):
        yield ids[i : i + CHUNK]


def newest_finished(store: SqlAlchemyStore, exp_id: str, run_ids: Iterable[str] | None = None) -> dict[str, Finished]:
    """run_id -> its newest FINISHED, active, non-trial child run of the experiment."""
    rid, kind = aliased(SqlTag), aliased(SqlTag)
    query = (
        select(SqlRun.run_uuid, SqlRun.start_time, rid.value)
        .join(rid, and_(rid.run_uuid == SqlRun.run_uuid, rid.key == Tag.RUN_ID))
        .outerjoin(kind, and_(kind.run_uuid == SqlRun.run_uuid, kind.key == Tag.KIND))
        .where(SqlRun.experiment_id == int(exp_id), SqlRun.status == Status.FINISHED.value,
               SqlRun.lifecycle_stage == "active", or_(kind.value.is_(None), kind.value != Kind.TRIAL.value))
    )
    wanted = set(run_ids) if run_ids is not None else None
    best: dict[str, Finished] = {}
    with store.ManagedSessionMaker() as session:
        for mlflow_id, start, run_id in session.execute(query):
            if (wanted is None or run_id in wanted) and (run_id not in best or start > best[run_id].start_time):
                best[run_id] = Finished(mlflow_id, run_id, start)
    return best


def details(store: SqlAlchemyStore, mlflow_ids: list[str]) -> dict[str, tuple[dict[str, str], dict[str, str], dict[str, float]]]:
    """mlflow id -> (params, tags, final metrics) of each run."""
    out: dict[str, tuple[dict, dict, dict]] = {m: ({}, {}, {}) for m in mlflow_ids}
    with store.ManagedSessionMaker() as session:
        for chunk in _chunks(mlflow_ids):
            for run, key, value in session.execute(select(SqlParam.run_uuid, SqlParam.key, SqlParam.value).where(SqlParam.run_uuid.in_(chunk))):
                out[run][0][key] = value
            for run, key, value in session.execute(select(SqlTag.run_uuid, SqlTag.key, SqlTag.value).where(SqlTag.run_uuid.in_(chunk))):
                out[run][1][key] = value
            metrics = select(SqlLatestMetric.run_uuid, SqlLatestMetric.key, SqlLatestMetric.value, SqlLatestMetric.is_nan)
            for run, key, value, is_nan in session.execute(metrics.where(SqlLatestMetric.run_uuid.in_(chunk))):
                out[run][2][key] = math.nan if is_nan else value
    return out


def histories(store: SqlAlchemyStore, mlflow_ids: list[str], keys: list[str]) -> dict[str, list[tuple[str, int, float]]]:
    """mlflow id -> every logged (metric, step, value) of the metrics `keys`, in step then logging order
    (what `get_metric_history` returns, one query per 500 runs instead of one per run and metric)."""
    out: dict[str, list[tuple[str, int, float]]] = {m: [] for m in mlflow_ids}
    query = select(SqlMetric.run_uuid, SqlMetric.key, SqlMetric.step, SqlMetric.value, SqlMetric.is_nan)
    with store.ManagedSessionMaker() as session:
        for chunk in _chunks(mlflow_ids):
            rows = session.execute(query.where(SqlMetric.run_uuid.in_(chunk), SqlMetric.key.in_(keys))
                                   .order_by(SqlMetric.run_uuid, SqlMetric.key, SqlMetric.step, SqlMetric.timestamp))
            for run, key, step, value, is_nan in rows:
                out[run].append((key, step, math.nan if is_nan else value))
    return out


@dataclass(frozen=True)
class Latest:
    mlflow_id: str
    run_id: str
    status: str
    start_time: int
    git_sha: str


def newest_any(store: SqlAlchemyStore, exp_id: str) -> dict[str, Latest]:
    """run_id -> its newest active, non-trial child run of the experiment, whatever its status, with the code
    commit it ran (tag git_sha)."""
    rid, kind, sha = aliased(SqlTag), aliased(SqlTag), aliased(SqlTag)
    query = (
        select(SqlRun.run_uuid, SqlRun.start_time, SqlRun.status, rid.value, sha.value)
        .join(rid, and_(rid.run_uuid == SqlRun.run_uuid, rid.key == Tag.RUN_ID))
        .outerjoin(kind, and_(kind.run_uuid == SqlRun.run_uuid, kind.key == Tag.KIND))
        .outerjoin(sha, and_(sha.run_uuid == SqlRun.run_uuid, sha.key == Tag.GIT_SHA))
        .where(SqlRun.experiment_id == int(exp_id), SqlRun.lifecycle_stage == "active",
               or_(kind.value.is_(None), kind.value != Kind.TRIAL.value))
    )
    best: dict[str, Latest] = {}
    with store.ManagedSessionMaker() as session:
        for mlflow_id, start, status, run_id, git in session.execute(query):
            if run_id not in best or start > best[run_id].start_time:
                best[run_id] = Latest(mlflow_id, run_id, status, start, git or "")
    return best
