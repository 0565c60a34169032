"""Tracking-store records -> one pandas DataFrame, one row per run."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from harness.spec.models import RunSpec
from harness.track import RunRecord


def parse_param(text: str) -> Any:
    """MLflow stores params as strings; give scalars back their type (lists stay strings)."""
    if text in ("True", "False"):
        return text == "True"
    if text == "None":
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _cell(value: Any) -> Any:
    """A config value as a frame cell: a list (an axis over lists) as the text MLflow shows, e.g. "[5, 20]"."""
    return str(value) if isinstance(value, list) else value


def config_columns(record: RunRecord, runs: Mapping[str, RunSpec] | None) -> dict[str, Any]:
    """The run's config columns: from its RunSpec (typed; a stage run adds `stage` and its source's
    config under `source.`), else parsed back from the MLflow params."""
    spec = runs.get(record.run_id) if runs is not None else None
    if spec is None:
        return {k: parse_param(v) for k, v in record.params.items()}
    return {"stage": spec.stage, **{k: _cell(v) for k, v in spec.config.flat().items()}}


def results_frame(records: Iterable[RunRecord], runs: Mapping[str, RunSpec] | None = None) -> pd.DataFrame:
    """One row per run: run_id, ablation, outcome, config columns (see config_columns), final metrics."""
    rows = []
    for r in records:
        row: dict[str, Any] = {"run_id": r.run_id, "ablation": r.tags.get("ablation", ""), "outcome": r.tags.get("outcome", "")}
        row.update(config_columns(r, runs))
        row.update(r.metrics)
        rows.append(row)
    return pd.DataFrame(rows)


def history_frame(records: Iterable[RunRecord], histories: dict[str, dict[str, list[tuple[int, float]]]],
                  runs: Mapping[str, RunSpec] | None = None) -> pd.DataFrame:
    """Long format of metric histories: one row per (run, step), config columns + one column per metric.
    `histories` maps a record's mlflow_id to its metric -> [(step, value)]."""
    rows = []
    for r in records:
        params = config_columns(r, runs)
        by_step: dict[int, dict[str, float]] = {}
        for key, points in histories.get(r.mlflow_id, {}).items():
            for step, value in points:
                by_step.setdefault(step, {})[key] = value
        ablation = r.tags.get("ablation", "")  # as in results_frame: figures select ablations like tables do
        rows += [{"run_id": r.run_id, "ablation": ablation, **params, "step": step, **values} for step, values in sorted(by_step.items())]
    return pd.DataFrame(rows)


def select(df: pd.DataFrame, where: dict[str, Any]) -> pd.DataFrame:
    """Rows whose columns equal the given values (a list means any of)."""
    mask = pd.Series(True, index=df.index)
    for col, want in where.items():
        if col not in df.columns:
            return df.iloc[0:0]
        mask &= df[col].isin(want if isinstance(want, list) else [want])
    return df[mask]


def metric_columns(df: pd.DataFrame, prefix: str) -> dict[str, Any]:
    """Metric columns starting with `prefix` -> column label (the rest of the name, as int when numeric)."""
    out = {}
    for c in df.columns:
        if isinstance(c, str) and c.startswith(prefix):
            rest = c[len(prefix):]
            out[c] = int(rest) if rest.isdigit() else rest
    return dict(sorted(out.items(), key=lambda kv: (isinstance(kv[1], str), kv[1])))


MISSING = "–"  # shown for a key a run does not have (e.g. pos_emb of an LSTM)


def fill_keys(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Key columns with missing values (or absent) filled with MISSING, so groupby keeps those runs."""
    out = df.copy()
    for k in keys:
        out[k] = out[k].astype(object).where(out[k].notna(), MISSING) if k in out.columns else MISSING
    return out


def _ids(df: pd.DataFrame, keys: list[str]) -> list[str]:
    """Identifier columns of a long frame: the keys, the seed and (when known) the run."""
    return list(dict.fromkeys([*keys, "seed", *(["run_id"] if "run_id" in df.columns else [])]))


def long_metric(df: pd.DataFrame, prefix: str, keys: list[str]) -> pd.DataFrame:
    """Long format: keys..., seed, x (column label), value."""
    cols = metric_columns(df, prefix)
    if not cols or df.empty:
        return pd.DataFrame(columns=[*keys, "seed", "x", "value"])
    ids = _ids(df, keys)
    long = fill_keys(df, keys)[[*ids, *cols]].melt(id_vars=ids, value_vars=list(cols), var_name="metric", value_name="value")
    long["x"] = long["metric"].map(cols)
    return long.drop(columns="metric").dropna(subset=["value"])


def long_format(df: pd.DataFrame, metric: str, keys: list[str], axis: str | None = None) -> pd.DataFrame:
    """keys..., seed, x, value: x is the metric-name suffix (`metric` a prefix) or, with `axis`, that
    config path's value (`metric` one metric name)."""
    if axis is None:
        return long_metric(df, metric, keys)
    if df.empty or metric not in df.columns or axis not in df.columns:
        return pd.DataFrame(columns=[*keys, "seed", "x", "value"])
    sub = fill_keys(df, keys).dropna(subset=[metric])
    ids = _ids(sub, keys)
    return sub[ids].assign(x=sub[axis], value=sub[metric])
