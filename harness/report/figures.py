"""seaborn figures: a metric vs an axis, one line per hue group, error band = std over seeds; ablation
heatmaps of a metric's mean over seeds."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from harness.report.frame import fill_keys, long_format, long_metric, select  # noqa: E402
from harness.spec.models import FigureSpec, HeatmapSpec  # noqa: E402


def curve_data(df: pd.DataFrame, spec: FigureSpec, history: pd.DataFrame | None = None) -> pd.DataFrame:
    """Long format for a figure: hue columns, seed, x, value (see FigureSpec for the three x axes)."""
    if spec.x is None and spec.over is None:
        return long_metric(select(df, spec.where), spec.metric, spec.hue)
    x_col = spec.over if spec.over is not None else spec.x
    source = df if spec.over is None else (history if history is not None else pd.DataFrame())
    sub = select(source, spec.where)
    if sub.empty or not {x_col, spec.metric} <= set(sub.columns):
        return pd.DataFrame(columns=[*spec.hue, "seed", "x", "value"])
    sub = fill_keys(sub, spec.hue)
    if spec.x is not None:
        sub = sub.dropna(subset=[spec.metric])
        x = sub[spec.x]
    else:  # seeds log at the same steps but see slightly different x (e.g. packed examples): average x per step
        sub = sub.dropna(subset=[spec.metric, x_col])
        x = sub.groupby([*spec.hue, "step"])[x_col].transform("mean")
    return sub[[*spec.hue, "seed"]].assign(x=x, value=sub[spec.metric])


def metric_curve(df: pd.DataFrame, spec: FigureSpec, path: Path, history: pd.DataFrame | None = None) -> Path | None:
    long = curve_data(df, spec, history)
    if long.empty:
        return None
    long = long.sort_values(spec.hue, kind="stable")  # legend in natural (numeric) order of the hue values
    long["group"] = long[spec.hue].astype(str).agg(" ".join, axis=1)
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    sns.lineplot(data=long, x="x", y="value", hue="group", hue_order=list(dict.fromkeys(long["group"])),
                 marker="o" if spec.over is None else None, errorbar="sd", ax=ax)
    if spec.log_x:
        ax.set_xscale("log")
    ax.set(xlabel=spec.x_label, ylabel=spec.y_label)
    ax.set_title(textwrap.fill(spec.title, 70), fontsize=10)
    if long["value"].between(0, 1).all():  # a rate: keep the ± sd band inside the possible range
        ax.set_ylim(-0.03, 1.03)
    ax.legend(title=" / ".join(h.split(".")[-1] for h in spec.hue), fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def heatmap_data(df: pd.DataFrame, spec: HeatmapSpec) -> pd.DataFrame:
    """rows x columns of the metric's mean over the runs (seeds) of each cell."""
    long = long_format(select(df, spec.where), spec.metric, [spec.rows], spec.columns)
    if long.empty:
        return pd.DataFrame()
    return long.groupby([spec.rows, "x"])["value"].mean().unstack("x")


def metric_heatmap(df: pd.DataFrame, spec: HeatmapSpec, path: Path) -> Path | None:
    grid = heatmap_data(df, spec)
    if grid.empty:
        return None
    fig, ax = plt.subplots(figsize=(2.4 + 0.9 * grid.shape[1], 1.6 + 0.5 * grid.shape[0]), dpi=120)
    rate = bool(((grid >= 0) & (grid <= 1)).all().all())  # a rate: the same colours for the same value in every report
    sns.heatmap(grid.astype(float), annot=True, fmt=f".{spec.decimals}f", cmap="viridis" if spec.higher_is_better else "viridis_r",
                vmin=0 if rate else None, vmax=1 if rate else None, cbar_kws={"label": spec.value_label or spec.metric}, linewidths=0.5, ax=ax)
    ax.set(xlabel=spec.x_label or spec.columns or "", ylabel=spec.y_label or spec.rows)
    ax.tick_params(axis="y", rotation=0)
    ax.set_title(textwrap.fill(spec.title, 60), fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
