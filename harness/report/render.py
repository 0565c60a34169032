"""Write reports/<suite>/: report.md, report.html (self-contained), tables.tex (booktabs) and the figures
(PNG).  Everything is rendered into a temporary folder first; only a complete report replaces the files."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from harness.report.claims import ClaimResult, check_claims
from harness.report.document import Block, Document, Figure, Section, Text
from harness.report.figures import metric_curve, metric_heatmap
from harness.report.html import render_html
from harness.report.latex import render_tex
from harness.report.tables import metric_table
from harness.spec.models import SuiteSpec


def history_metrics(spec: SuiteSpec) -> list[str]:
    """Metrics whose history along training the report needs (figures with `over`)."""
    keys = [k for f in spec.report.figures if f.over is not None for k in (f.metric, f.over)]
    return list(dict.fromkeys(keys))


def _paper_value(v: float | str | None) -> str:
    if v is None:
        return ""
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)


def claims_section(results: list[ClaimResult]) -> Section:
    rows = [[r.claim.id, r.claim.text.strip(), r.claim.source, _paper_value(r.claim.paper_value),
             r.check or "–", r.measured or "–", r.status] for r in results]
    n = {s: sum(r.status == s for r in results) for s in ("PASS", "FAIL", "NO DATA", "not checked")}
    note = ", ".join(f"{v} {k}" for k, v in n.items() if v) + ". `harness report SUITE --check` exits 1 on FAIL or NO DATA."
    return Section("Claims", ["id", "claim", "source", "paper value", "check", "measured", "result"], rows, note=note)


def build_document(spec: SuiteSpec, df: pd.DataFrame, fig_dir: Path, n_expected: int, claims: Sequence[ClaimResult] = (),
                   history: pd.DataFrame | None = None, sections: Sequence[Section] = (),
                   provenance: Sequence[Section | Text] = ()) -> Document:
    profile = (f"Profile: **{spec.profile}** (the suite's `profiles.{spec.profile}` applied to every run)." if spec.profile
               else f"Profile: none (the suite as written){'; also declared: ' + ', '.join(spec.profiles) if spec.profiles else ''}.")
    intro = [spec.description.strip(), profile, f"Runs with results: {len(df)} of {n_expected} expected."]
    if "outcome" in df.columns and (df["outcome"] == "diverged").any():
        intro.append(f"Diverged runs: {int((df['outcome'] == 'diverged').sum())}.")
    blocks: list[Block] = []
    if claims:
        blocks.append(claims_section(list(claims)))
    blocks += [metric_table(df, t).section() for t in spec.report.tables]
    blocks += [Figure(f.title, metric_curve(df, f, fig_dir / f.file, history)) for f in spec.report.figures]
    blocks += [Figure(h.title, metric_heatmap(df, h, fig_dir / h.file)) for h in spec.report.heatmaps]
    blocks += [*sections, *provenance]
    return Document(f"{spec.name} ({spec.profile})" if spec.profile else spec.name, [p for p in intro if p], blocks)


def render_md(doc: Document) -> str:
    lines = [f"# {doc.title}", ""]
    for p in doc.intro:
        lines += [p, ""]
    for b in doc.blocks:
        lines += [f"## {b.title}", ""]
        if isinstance(b, Section):
            lines += [b.markdown() if b.rows else "_no results yet_", ""]
            lines += [b.note, ""] if b.note else []
        elif isinstance(b, Figure):
            lines += [f"![{b.title}]({b.path.name})" if b.path else "_no results yet_", ""]
        else:
            for p in b.lines:
                lines += [p, ""]
            lines += ["```", *b.code, "```", ""] if b.code else []
    return "\n".join(lines)


def write_report(spec: SuiteSpec, df: pd.DataFrame, out_dir: Path, n_expected: int, claims: Sequence[ClaimResult] | None = None,
                 history: pd.DataFrame | None = None, sections: Sequence[Section] = (),
                 provenance: Sequence[Section | Text] = ()) -> Path:
    """Write the report of `spec` and return the path of report.md.  `claims`: the checked claims (their
    table leads the report; None: checked here); `sections` are extra tables (e.g. tuning results) shown after the figures;
    `provenance` is the reproducibility block (repro.py)."""
    claims = check_claims(spec.claims, df) if claims is None else claims
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}-"))
    try:
        doc = build_document(spec, df, tmp, n_expected, claims, history, sections, provenance)
        (tmp / "report.md").write_text(render_md(doc))
        (tmp / "report.html").write_text(render_html(doc))
        (tmp / "tables.tex").write_text(render_tex(doc))
        for f in sorted(tmp.iterdir()):  # all rendered: move each file into place (os.replace is atomic)
            os.chmod(f, 0o644)
            os.replace(f, out_dir / f.name)
    finally:
        shutil.rmtree(tmp)
    return out_dir / "report.md"
