"""seaborn figures: a metric vs an axis, one line per hue group, error band = std over seeds."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from harness.report.frame import fill_keys, long_metric, select  # noqa: E402
from harness.spec.models import FigureSpec  # noqa: E402


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
