"""The results layer (polars): one row per run and a long table of metric histories.

`results_frame`: built from the typed RunSpecs the report expands (config columns carry the suite's own
values: a list axis is a list column, never MLflow's string of it), joined with the store's final metrics.
Columns: run_id, mlflow_id, name, cell (the run without its seed), stage, ablation, outcome, every config
path (`RunConfig.flat()`, a stage run's source under `source.`), then one column per metric.
`history_frame`: run_id, metric, step, value.  `select` filters on `where:` values written in the suite."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import polars as pl

from harness.spec.models import RunSpec
from harness.spec.tree import value_matches
from harness.track import RunRecord

ID_COLUMNS = ("run_id", "mlflow_id", "name", "cell", "stage", "ablation", "outcome")
MISSING = "–"  # shown for a key a run does not have (e.g. pos_emb of an LSTM)


def _series(name: str, values: list[Any]) -> pl.Series:
    """A typed column: ints and floats together are floats; other mixed kinds (e.g. an int in some runs, a
    string in others) become text."""
    numbers = [v for v in values if v is not None]
    if numbers and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers) \
            and any(isinstance(v, float) for v in numbers):
        values = [None if v is None else float(v) for v in values]
    try:
        return pl.Series(name, values, strict=True)
    except (TypeError, pl.exceptions.PolarsError, OverflowError):
        return pl.Series(name, [None if v is None else str(v) for v in values], dtype=pl.String)


def build(rows: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    """A frame from dict rows (keys missing in a row are null), one typed column per key, in first-seen order."""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    return pl.DataFrame([_series(k, [r.get(k) for r in rows]) for k in keys]) if rows else pl.DataFrame()


def run_columns(run: RunSpec) -> dict[str, Any]:
    """What a run's row says about it before any metric: identity and config."""
    return {"run_id": run.run_id, "name": run.name, "cell": run.cell, "stage": run.stage, "ablation": run.ablation,
            **run.config.flat()}


def results_frame(runs: Sequence[RunSpec], records: Iterable[RunRecord]) -> pl.DataFrame:
    """One row per run of `runs` that has a record in the store (see the module docstring)."""
    by_id = {r.run_id: r for r in runs}
    rows = []
    for rec in records:
        run = by_id.get(rec.run_id)
        if run is None:
            continue
        rows.append({**run_columns(run), "mlflow_id": rec.mlflow_id, "outcome": rec.tags.get("outcome", ""), **rec.metrics})
    df = build(rows)
    return df.select([*[c for c in ID_COLUMNS if c in df.columns], *[c for c in df.columns if c not in ID_COLUMNS]]) if rows else df


def history_frame(histories: Mapping[str, Sequence[tuple[str, int, float]]]) -> pl.DataFrame:
    """Long format: run_id, metric, step, value.  `histories` maps a run_id to its (metric, step, value) points."""
    cols: dict[str, list[Any]] = {"run_id": [], "metric": [], "step": [], "value": []}
    for run_id, points in histories.items():
        for metric, step, value in points:
            cols["run_id"].append(run_id)
            cols["metric"].append(metric)
            cols["step"].append(step)
            cols["value"].append(value)
    return pl.DataFrame(cols, schema={"run_id": pl.String, "metric": pl.String, "step": pl.Int64, "value": pl.Float64})


def metric_columns(df: pl.DataFrame, prefix: str) -> dict[str, Any]:
    """Metric columns starting with `prefix` -> column label (the rest of the name, as int when numeric)."""
    out = {}
    for c in df.columns:
        if c.startswith(prefix) and c not in ID_COLUMNS:
            rest = c[len(prefix):]
            out[c] = int(rest) if rest.isdigit() else rest
    return dict(sorted(out.items(), key=lambda kv: (isinstance(kv[1], str), kv[1])))


matches = value_matches  # a `where:` value against a run's (harness.spec.tree.value_matches)


def select(df: pl.DataFrame, where: Mapping[str, Any]) -> pl.DataFrame:
    """Rows whose columns match the given values (see `matches`); a column the frame lacks matches nothing."""
    for col, want in where.items():
        if col not in df.columns:
            return df.clear()
        df = df.filter(pl.Series([matches(v, want) for v in df[col].to_list()], dtype=pl.Boolean))  # Python equality: 3 == 3.0
    return df


def show(value: Any) -> str:
    """A key as a label: 4.0 -> '4' (a numeric column turns float when other runs lack it), None -> '–'."""
    if value is None:
        return MISSING
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


ITEMS = "items/"  # a run's metric `items/<name>`: the independent test items behind metric <name>, or every <name>/...


def items_column(columns: Sequence[str], metric: str) -> str | None:
    """The column `items/<name>` that counts the test items behind `metric` (<name> is the metric, or a
    family of it: `items/probe` covers probe/linear, probe/knn_100, ...; the longest wins), or None: the
    metric is not a proportion (harness.report.stats)."""
    def covers(c: str) -> bool:
        name = c[len(ITEMS):]
        return c.startswith(ITEMS) and bool(name) and (metric == name or metric.startswith(name + "/"))

    found = [c for c in columns if covers(c)]
    return max(found, key=len) if found else None


def _items(col: str | None) -> pl.Expr:
    return (pl.col(col) if col else pl.lit(None)).cast(pl.Float64)


def long_format(df: pl.DataFrame, metric: str, keys: Sequence[str], axis: str | None = None) -> pl.DataFrame:
    """keys..., seed, run_id, cell, x, value, items (one row per run and x): x is the metric-name suffix
    (`metric` a prefix) or, with `axis`, that config path's value (`metric` one metric name); items: the test
    items behind the value (null: not a proportion).  A key the frame lacks is null."""
    keys = list(dict.fromkeys(keys))
    ids = [c for c in dict.fromkeys([*keys, "seed", "run_id", "cell"]) if c in df.columns]
    missing = [k for k in keys if k not in df.columns]
    empty = pl.DataFrame(schema={**{k: pl.String for k in keys}, "seed": pl.Int64, "run_id": pl.String, "cell": pl.String,
                                 "x": pl.String, "value": pl.Float64, "items": pl.Float64})
    if df.is_empty():
        return empty
    df = df.with_columns([pl.lit(None, dtype=pl.String).alias(k) for k in missing])
    if axis is None:
        cols = metric_columns(df, metric)
        cols = {c: v for c, v in cols.items() if not c.startswith(ITEMS)}
        if not cols:
            return empty
        long = df.select([*ids, *cols]).unpivot(index=ids, on=list(cols), variable_name="_metric", value_name="value")
        counts = (df.select(["run_id", *[_items(items_column(df.columns, c)).alias(c) for c in cols]])
                  .unpivot(index="run_id", on=list(cols), variable_name="_metric", value_name="items"))
        long = long.join(counts, on=["run_id", "_metric"], how="left", maintain_order="left")
        if _ints(cols):
            x = pl.col("_metric").replace_strict(cols, return_dtype=pl.Int64)
        else:
            x = pl.col("_metric").replace_strict({c: str(v) for c, v in cols.items()}, return_dtype=pl.String)
        long = long.with_columns(x.alias("x")).drop("_metric")
    else:
        if metric not in df.columns or axis not in df.columns:
            return empty
        long = df.select([*ids, pl.col(axis).alias("x"), pl.col(metric).cast(pl.Float64).alias("value"),
                          _items(items_column(df.columns, metric)).alias("items")])
    return long.filter(pl.col("value").is_not_null() & pl.col("value").is_not_nan())


def items_of(values: Sequence[float | None]) -> int | None:
    """The test items behind a cell's values (the fewest of its runs'), or None: not a proportion."""
    known = [int(v) for v in values if v is not None and v == v and v > 0]
    return min(known) if known else None


def _ints(cols: Mapping[str, Any]) -> bool:
    return all(isinstance(v, int) for v in cols.values())


def natural(value: Any) -> tuple:
    """Sort key of an axis value: numbers in numeric order, then text (e.g. f0_pred, f0_sim)."""
    if isinstance(value, bool) or value is None:
        return (2, 0.0, str(value))
    if isinstance(value, (int, float)):
        return (0, float(value), "")
    m = re.fullmatch(r"-?\d+(\.\d+)?", str(value))
    return (0, float(value), "") if m else (1, 0.0, str(value))
