"""Write reports/<suite>/report.md (+ figures) from the results DataFrame."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd

from harness.report.figures import metric_curve
from harness.report.tables import metric_table
from harness.spec.models import SuiteSpec


def history_metrics(spec: SuiteSpec) -> list[str]:
    """Metrics whose history along training the report needs (figures with `over`)."""
    keys = [k for f in spec.report.figures if f.over is not None for k in (f.metric, f.over)]
    return list(dict.fromkeys(keys))


def write_report(spec: SuiteSpec, df: pd.DataFrame, out_dir: Path, n_expected: int, history: pd.DataFrame | None = None) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = [f"# {spec.name}", "", spec.description.strip(), ""]
    lines += [f"Runs with results: {len(df)} of {n_expected} expected.", ""]
    if "outcome" in df.columns and (df["outcome"] == "diverged").any():
        lines += [f"Diverged runs: {int((df['outcome'] == 'diverged').sum())}.", ""]
    for t in spec.report.tables:
        table = metric_table(df, t)
        lines += [f"## {t.title}", "", table.markdown() if table.rows else "_no results yet_", ""]
    for f in spec.report.figures:
        png = metric_curve(df, f, out_dir / f.file, history)
        lines += [f"## {f.title}", "", f"![{f.title}]({f.file})" if png else "_no results yet_", ""]
    if spec.claims:
        lines += ["## Claims (from the paper; checked automatically once the claims checker lands)", ""]
        lines += [f"- **{c.id}** — {c.text}" + (f" _(source: {c.source})_" if c.source else "") for c in spec.claims]
        lines.append("")
    path = out_dir / "report.md"
    _atomic_write(path, "\n".join(lines))
    return path


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".report-")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
