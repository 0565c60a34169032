"""seaborn figures: a metric vs an axis, one line per hue group with the 95% interval of the mean over seeds
as a band (within the metric's range; harness.report.stats) and, with at most 5 seeds, the seeds' own
points (or curves); ablation heatmaps of a metric's mean over seeds.  polars frames in, pandas only at
the plotting edge."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402  (seaborn's input, at the plotting edge)
import polars as pl  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402

from harness.report import stats  # noqa: E402
from harness.report.frame import items_column, items_of, long_format, natural, select, show  # noqa: E402
from harness.spec.models import FigureSpec, HeatmapSpec  # noqa: E402

MAX_SEED_MARKS = 5  # figures draw each seed's own points (or curves) up to this many seeds per line


def curve_data(df: pl.DataFrame, spec: FigureSpec, history: pl.DataFrame | None = None) -> pl.DataFrame:
    """Long format for a figure: hue columns, seed, run_id, x, value (see FigureSpec for the three x axes)."""
    sub = select(df, spec.where)
    if spec.over is None:
        return long_format(sub, spec.metric, spec.hue, spec.x)
    empty = pl.DataFrame(schema={**{h: pl.String for h in spec.hue}, "seed": pl.Int64, "run_id": pl.String, "x": pl.Float64,
                                 "value": pl.Float64, "items": pl.Float64})
    if history is None or history.is_empty() or sub.is_empty():
        return empty
    wide = (history.filter(pl.col("metric").is_in([spec.metric, spec.over]))
            .pivot(on="metric", index=["run_id", "step"], values="value", aggregate_function="last"))
    if not {spec.metric, spec.over} <= set(wide.columns):
        return empty
    ids = [c for c in dict.fromkeys([*spec.hue, "seed", "run_id"]) if c in sub.columns]
    items = items_column(sub.columns, spec.metric)
    runs = sub.select([*ids, (pl.col(items) if items else pl.lit(None)).cast(pl.Float64).alias("items")])
    runs = runs.with_columns([pl.lit(None, dtype=pl.String).alias(h) for h in spec.hue if h not in sub.columns])
    long = wide.join(runs, on="run_id").drop_nulls([spec.metric, spec.over])
    # seeds log at the same steps but see slightly different x (e.g. packed examples): average x per step
    long = long.with_columns(pl.col(spec.over).mean().over([*spec.hue, "step"]).alias("x"))
    return long.select([*spec.hue, "seed", "run_id", "x", pl.col(spec.metric).alias("value"), "items"])


def value_range(long: pl.DataFrame, spec: FigureSpec) -> tuple[float, float] | None:
    """The metric's possible range: the figure's `range`, else [0, 1] for a proportion (its runs log test items)."""
    if spec.range is not None:
        return spec.range
    return (0.0, 1.0) if long["items"].drop_nulls().len() else None


def band_data(long: pl.DataFrame, spec: FigureSpec) -> list[dict]:
    """Per hue group and x: the mean, its 95% interval clipped to the metric's range, and the seed count."""
    rng = value_range(long, spec)
    rows = []
    for key, g in long.group_by([*spec.hue, "x"], maintain_order=True):
        e = stats.interval(g["value"].to_list(), items=items_of(g["items"].to_list()))
        lo, hi = (e.lo, e.hi) if e.has_interval else (e.center, e.center)
        if rng is not None:
            lo, hi = max(lo, rng[0]), min(hi, rng[1])
        rows.append({"group": " ".join(show(v) for v in key[:-1]), "order": tuple(natural(v) for v in key[:-1]), "x": key[-1],
                     "mean": e.center, "lo": lo, "hi": hi, "n": e.n, "method": e.method})
    return sorted(rows, key=lambda r: (r["order"], natural(r["x"])))


def metric_curve(df: pl.DataFrame, spec: FigureSpec, path: Path, history: pl.DataFrame | None = None) -> Path | None:
    long = curve_data(df, spec, history)
    if long.is_empty():
        return None
    bands = band_data(long, spec)
    summary = pl.DataFrame([{k: r[k] for k in ("group", "x", "mean", "lo", "hi")} for r in bands]).to_pandas()
    order = list(dict.fromkeys(r["group"] for r in bands))
    palette = dict(zip(order, sns.color_palette(n_colors=len(order))))
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    sns.lineplot(data=summary, x="x", y="mean", hue="group", hue_order=order, palette=palette,
                 marker="o" if spec.over is None else None, errorbar=None, ax=ax)
    for group in order:
        part = summary[summary["group"] == group]
        ax.fill_between(part["x"], part["lo"], part["hi"], color=palette[group], alpha=0.2, linewidth=0)
    seeds = long.group_by(spec.hue).agg(pl.col("seed").n_unique().alias("n"))["n"].max()
    if seeds <= MAX_SEED_MARKS:  # few seeds: show them, not only their mean
        runs = long.with_columns(pl.concat_str([pl.col(h).map_elements(show, return_dtype=pl.String, skip_nulls=False)
                                                for h in spec.hue],
                                               separator=" ").alias("group")).sort(["group", "run_id", "x"])
        for part in runs.partition_by("group", maintain_order=True):  # one artist per group: 1,000 runs draw in ms
            group = part["group"][0]
            if spec.over is None:
                ax.scatter(part["x"].to_numpy(), part["value"].to_numpy(), color=palette[group], s=10, alpha=0.6, zorder=3)
            else:
                curves = [run.select("x", "value").to_numpy() for run in part.partition_by("run_id", maintain_order=True)]
                ax.add_collection(LineCollection(curves, colors=palette[group], alpha=0.35, linewidths=0.7), autolim=True)
        ax.autoscale_view()
    if spec.log_x:
        ax.set_xscale("log")
    rng = value_range(long, spec)
    if rng is not None:
        pad = 0.03 * (rng[1] - rng[0])
        ax.set_ylim(rng[0] - pad, rng[1] + pad)
    ax.set(xlabel=spec.x_label, ylabel=spec.y_label)
    ax.set_title(textwrap.fill(spec.title, 70), fontsize=10)
    ax.legend(title=" / ".join(h.split(".")[-1] for h in spec.hue), fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def figure_caption(df: pl.DataFrame, spec: FigureSpec, history: pl.DataFrame | None = None) -> str:
    long = curve_data(df, spec, history)
    if long.is_empty():
        return ""
    methods = {r["method"] for r in band_data(long, spec)}
    how = " / ".join(stats.METHODS[m] for m in stats.METHODS if m in methods)
    seeds = long.group_by(spec.hue).agg(pl.col("seed").n_unique().alias("n"))["n"].max()
    return (f"Lines: mean over seeds; band: 95% interval ({how}), clipped to the metric's range"
            + (f"; thin marks: each of the ≤ {MAX_SEED_MARKS} seeds" if seeds <= MAX_SEED_MARKS else "") + ".")


def heatmap_data(df: pl.DataFrame, spec: HeatmapSpec):
    """rows x columns (a pandas frame, for seaborn) of the metric's mean over the runs (seeds) of each cell."""
    long = long_format(select(df, spec.where), spec.metric, [spec.rows], spec.columns)
    if long.is_empty():
        return None
    means = long.group_by([spec.rows, "x"]).agg(pl.col("value").mean())
    rows = sorted(set(means[spec.rows].to_list()), key=natural)
    cols = sorted(set(means["x"].to_list()), key=natural)
    at = {(r, x): v for r, x, v in means.select([spec.rows, "x", "value"]).iter_rows()}
    return pd.DataFrame([[at.get((r, x), float("nan")) for x in cols] for r in rows], index=[show(r) for r in rows],
                        columns=[show(x) for x in cols])


def metric_heatmap(df: pl.DataFrame, spec: HeatmapSpec, path: Path) -> Path | None:
    grid = heatmap_data(df, spec)
    if grid is None:
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
