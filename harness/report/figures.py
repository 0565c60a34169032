"""seaborn figures: a metric vs an axis, one line per hue group, error band = std over seeds."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from harness.report.frame import long_metric, select  # noqa: E402
from harness.spec.models import FigureSpec  # noqa: E402


def metric_curve(df: pd.DataFrame, spec: FigureSpec, path: Path) -> Path | None:
    long = long_metric(select(df, spec.where), spec.metric, spec.hue)
    if long.empty:
        return None
    long = long.sort_values(spec.hue, kind="stable")  # legend in natural (numeric) order of the hue values
    long["group"] = long[spec.hue].astype(str).agg(" ".join, axis=1)
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    sns.lineplot(data=long, x="x", y="value", hue="group", hue_order=list(dict.fromkeys(long["group"])), marker="o", errorbar="sd", ax=ax)
    ax.set(title=spec.title, xlabel=spec.x_label, ylabel=spec.y_label)
    ax.legend(title=" / ".join(h.split(".")[-1] for h in spec.hue), fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
