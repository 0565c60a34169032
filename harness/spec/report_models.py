"""The `report:` block of a suite: tables, curves and heatmaps (claims are in claim_models)."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, model_validator

from harness.spec.base import Strict, Where

Statistic = Literal["mean", "median", "iqm"]
PNG = r"^[A-Za-z0-9_.-]+\.png$"


class TableSpec(Strict):
    """rows x columns, cell = the statistic over seeds with its 95% interval (harness.report.stats), the best
    in bold where it is separated from every other row beyond noise.  Columns are the metric-name
    suffix (`metric` is a prefix such as 'exact/len_') or, with `columns`, a config path (`metric`
    is then one metric name).  An axis that varies within a cell and is not a row, the column or
    fixed by `where` is named in the table as pooled; `pool` lists those the table averages on purpose."""

    title: str
    metric: str = Field(description="metric family prefix, e.g. 'exact/len_'; the rest of the name is the column")
    rows: list[str] = Field(min_length=1, description="config paths (or 'ablation') that label a row")
    columns: Optional[str] = Field(None, description="config path whose values are the columns")
    where: Where = Field(default_factory=dict)
    column_label: str = "length"
    higher_is_better: bool = True
    decimals: int = Field(default=2, ge=0, le=8)
    statistic: Statistic = Field("mean", description="mean (t-interval; with test items for a proportion), median (order-statistic "
                                 "interval from 6 runs) or iqm (bootstrap from 20 runs)")
    std: bool = Field(False, description="also show ± the standard deviation over seeds")
    pool: list[str] = Field(default_factory=list, description="axes averaged within a cell on purpose")


class FigureSpec(Strict):
    """A metric plotted against one of three x axes, one line per `hue` group, band = the 95% interval of the
    mean over seeds (clipped to `range`; the seeds' own points drawn when there are at most 5):
    the metric-name suffix (default: `metric` is a prefix such as 'exact/len_'), a config path (`x`),
    or another metric logged along training (`over`, e.g. examples_seen: curves from metric histories)."""

    title: str
    metric: str
    hue: list[str] = Field(min_length=1)
    where: Where = Field(default_factory=dict)
    x: Optional[str] = Field(default=None, description="config path for the x axis; `metric` is then one metric name")
    over: Optional[str] = Field(default=None, description="metric logged at the same steps as `metric`; plots the history")
    log_x: bool = False
    x_label: str = "length"
    y_label: str = "accuracy"
    range: Optional[tuple[float, float]] = Field(None, description="the metric's possible range; default [0, 1] for a proportion "
                                                 "(its runs log `items/...`), else none")
    file: str = Field(pattern=PNG)

    @model_validator(mode="after")
    def _one_x(self) -> FigureSpec:
        if self.x is not None and self.over is not None:
            raise ValueError("give at most one of 'x' (a config path) and 'over' (a logged metric)")
        return self


class HeatmapSpec(Strict):
    """An ablation heatmap: a metric's mean over seeds for each (row, column) cell.  Rows are one config
    path; columns another config path (`columns`) or, by default, the metric-name suffix."""

    title: str
    metric: str
    rows: str = Field(description="config path (or 'ablation') of the rows")
    columns: Optional[str] = Field(None, description="config path of the columns; default: the metric-name suffix")
    where: Where = Field(default_factory=dict)
    x_label: str = ""
    y_label: str = ""
    value_label: str = Field("", description="colour bar label; default: the metric")
    decimals: int = Field(default=2, ge=0, le=8)
    higher_is_better: bool = Field(True, description="colour direction: bright = good")
    file: str = Field(pattern=PNG)


class ReportSpec(Strict):
    family: Literal["holm", "none"] = Field(
        "holm", description="how the suite's claims are controlled as a family: Holm's step-down at each claim's alpha, or none")
    tables: list[TableSpec] = Field(default_factory=list)
    figures: list[FigureSpec] = Field(default_factory=list)
    heatmaps: list[HeatmapSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _distinct_files(self) -> ReportSpec:
        files = [f.file for f in [*self.figures, *self.heatmaps]]
        dup = sorted({f for f in files if files.count(f) > 1})
        if dup:
            raise ValueError(f"two figures write the same file: {', '.join(dup)}")
        return self
