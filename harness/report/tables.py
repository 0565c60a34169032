"""Paper-style tables: rows x columns, cell = mean ± std over seeds, best in bold."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from harness.report.frame import long_metric, select
from harness.spec.models import TableSpec


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[str]]
    mean: pd.DataFrame  # rows x columns, numeric
    std: pd.DataFrame
    seeds: pd.Series

    def markdown(self) -> str:
        lines = ["| " + " | ".join(self.header) + " |", "|" + "|".join("---" for _ in self.header) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in self.rows]
        return "\n".join(lines)


def _fmt(mean: float, std: float, bold: bool, decimals: int = 2) -> str:
    if math.isnan(mean):
        return "–"
    cell = f"{mean:.{decimals}f}" if math.isnan(std) else f"{mean:.{decimals}f} ± {std:.{decimals}f}"
    return f"**{cell}**" if bold else cell


def _key(value: object) -> str:
    """A row label: 4.0 -> '4' (a numeric column turns float when other runs lack it)."""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def metric_table(df: pd.DataFrame, spec: TableSpec) -> Table:
    sub = select(df, spec.where)
    long = long_metric(sub, spec.metric, spec.rows)
    if long.empty:
        return Table(spec.title, [*spec.rows, "seeds"], [], pd.DataFrame(), pd.DataFrame(), pd.Series(dtype=int))
    grouped = long.groupby([*spec.rows, "x"])["value"]
    mean = grouped.mean().unstack("x")
    std = grouped.std(ddof=1).unstack("x")
    seeds = long.groupby(spec.rows)["seed"].nunique()
    best = mean.max() if spec.higher_is_better else mean.min()
    tied = (mean.nunique() <= 1) & (mean.count() > 1)  # no bold when every row has the same value
    header = [*spec.rows, "seeds", *[f"{spec.column_label} {c}" for c in mean.columns]]
    rows = []
    for idx in mean.index:
        key = idx if isinstance(idx, tuple) else (idx,)
        cells = [_fmt(mean.at[idx, c], std.at[idx, c], bool(mean.at[idx, c] == best[c]) and not tied[c], spec.decimals) for c in mean.columns]
        rows.append([*map(_key, key), str(int(seeds.loc[idx])), *cells])
    return Table(spec.title, header, rows, mean, std, seeds)
