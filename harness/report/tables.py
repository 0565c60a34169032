"""Paper-style tables: rows x columns, cell = mean ± std over seeds, best in bold, a seeds column."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from harness.report.document import Section
from harness.report.frame import long_format, select
from harness.spec.models import TableSpec


@dataclass
class Table:
    title: str
    header: list[str]
    cells: list[list[str]]  # plain text
    bold: list[list[bool]]  # best of its column
    mean: pd.DataFrame  # rows x columns, numeric
    std: pd.DataFrame
    seeds: pd.Series

    @property
    def rows(self) -> list[list[str]]:
        """Cells with the best ones in Markdown bold."""
        return [[f"**{c}**" if b else c for c, b in zip(row, bold)] for row, bold in zip(self.cells, self.bold)]

    def section(self, note: str = "") -> Section:
        return Section(self.title, self.header, self.cells, note=note, bold=self.bold)

    def markdown(self) -> str:
        return self.section().markdown()


def _fmt(mean: float, std: float, decimals: int = 2) -> str:
    if math.isnan(mean):
        return "–"
    return f"{mean:.{decimals}f}" if math.isnan(std) else f"{mean:.{decimals}f} ± {std:.{decimals}f}"


def _key(value: object) -> str:
    """A row label: 4.0 -> '4' (a numeric column turns float when other runs lack it)."""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def metric_table(df: pd.DataFrame, spec: TableSpec) -> Table:
    long = long_format(select(df, spec.where), spec.metric, spec.rows, spec.columns)
    if long.empty:
        return Table(spec.title, [*spec.rows, "seeds"], [], [], pd.DataFrame(), pd.DataFrame(), pd.Series(dtype=int))
    grouped = long.groupby([*spec.rows, "x"])["value"]
    mean = grouped.mean().unstack("x")
    std = grouped.std(ddof=1).unstack("x")
    seeds = long.groupby(spec.rows)["seed"].nunique()
    best = mean.max() if spec.higher_is_better else mean.min()
    tied = (mean.nunique() <= 1) & (mean.count() > 1)  # no bold when every row has the same value
    label = f"{spec.column_label} " if spec.column_label else ""
    header = [*spec.rows, "seeds", *[f"{label}{_key(c)}" for c in mean.columns]]
    cells, bold = [], []
    for idx in mean.index:
        key = idx if isinstance(idx, tuple) else (idx,)
        cells.append([*map(_key, key), str(int(seeds.loc[idx])), *[_fmt(mean.at[idx, c], std.at[idx, c], spec.decimals) for c in mean.columns]])
        bold.append([False] * (len(key) + 1) + [bool(mean.at[idx, c] == best[c]) and not tied[c] for c in mean.columns])
    return Table(spec.title, header, cells, bold, mean, std, seeds)
