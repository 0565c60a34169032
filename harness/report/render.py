"""Write reports/<suite>/: report.md, report.html (self-contained), tables.tex (booktabs) and the figures
(PNG).  Everything is rendered into a temporary folder first; only a complete report replaces the files."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from harness.report.claims import STATUSES, ClaimResult, suite_claims
from harness.report.document import Block, Document, Figure, Section, Text
from harness.report.figures import figure_caption, metric_curve, metric_heatmap
from harness.report.html import render_html
from harness.report.latex import render_tex
from harness.report.tables import metric_table
from harness.spec.models import SuiteSpec


@dataclass
class ReportData:
    """What a report is made of: the results frame, the histories its figures read, how many runs the suite
    expands to, its axes (what a table must not pool silently) and where each run is in the MLflow UI."""

    frame: pl.DataFrame
    history: pl.DataFrame | None
    n_expected: int
    axes: list[str] = field(default_factory=list)
    run_urls: dict[str, str] = field(default_factory=dict)  # run_id -> MLflow UI page of its run


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
             r.check or "–", r.measured or "–", r.headroom or "–", "; ".join(filter(None, [r.method, r.power])) or "–", r.status]
            for r in results]
    n = {s: sum(r.status == s for r in results) for s in STATUSES}
    note = (", ".join(f"{v} {k}" for k, v in n.items() if v) + ". " + CLAIMS_NOTE)
    return Section("Claims", ["id", "claim", "source", "paper value", "check", "measured", "headroom (ceiling − floor)",
                              "statistics", "result"], rows, note=note)


CLAIMS_NOTE = ("PASS / FAIL: the check's interval clears its bound or margin (at every point), or misses it (at one "
               "point, Bonferroni over the points), and the claims together survive Holm's correction; INCONCLUSIVE: it "
               "straddles it (what more seeds would do is named); UNTESTABLE: the reference arms leave no room to tell "
               "(headroom not verified, a bound out of reach, every arm at the floor or at the ceiling); the headroom "
               "column is the best ceiling minus the best floor at the point shown, with its interval. "
               "`harness report SUITE --check` exits 1 on FAIL or NO DATA, else 4 on UNTESTABLE, else 3 on INCONCLUSIVE.")


MAX_RUNS_LISTED = 1000  # a larger suite's runs index lists the first ones; `harness results` exports all


def runs_section(df: pl.DataFrame, urls: dict[str, str]) -> Section:
    """Every run with results (up to MAX_RUNS_LISTED), linked to its page in the MLflow UI."""
    if "source.run_id" in df.columns:  # a stage run's source, by name (its own row in this table)
        names = dict(zip(df["run_id"].to_list(), df["name"].to_list()))
        df = df.with_columns(pl.col("source.run_id").replace_strict(names, default=pl.col("source.run_id"), return_dtype=pl.String).alias("source"))
    cols = [c for c in ("name", "cell", "seed", "stage", "source", "outcome", "run_id") if c in df.columns]
    shown = df.select(cols).head(MAX_RUNS_LISTED)
    rows = [[str(r[c]) if r[c] is not None else "" for c in cols] for r in shown.iter_rows(named=True)]
    links = [[urls.get(r["run_id"], "") if j == 0 else "" for j in range(len(cols))] for r in shown.iter_rows(named=True)]
    note = "Each run's name links to its MLflow run page (params, metrics, tags, artifacts)." if urls else ""
    if df.height > MAX_RUNS_LISTED:
        note += f" The first {MAX_RUNS_LISTED} of {df.height} runs; `harness results SUITE` exports them all."
    return Section("Runs", cols, rows, note=note, links=links, latex=False)


def _unshown(df: pl.DataFrame, shown: set[str]) -> str:
    if df.is_empty():
        return ""
    left = df.filter(~pl.col("run_id").is_in(sorted(shown)))
    if left.is_empty():
        return ""
    cells = left.group_by("cell", maintain_order=True).len()
    return (f"Runs no table shows: {left.height} (" + "; ".join(f"{c}: {n}" for c, n in cells.iter_rows()) + ").")


def build_document(spec: SuiteSpec, data: ReportData, fig_dir: Path, claims: Sequence[ClaimResult] = (),
                   sections: Sequence[Section] = (), provenance: Sequence[Section | Text] = (), variant: str = "") -> Document:
    df = data.frame
    profile = (f"Profile: **{spec.profile}** (the suite's `profiles.{spec.profile}` applied to every run)." if spec.profile
               else f"Profile: none (the suite as written){'; also declared: ' + ', '.join(spec.profiles) if spec.profiles else ''}.")
    intro = [spec.description.strip(), profile, variant, f"Runs with results: {df.height} of {data.n_expected} expected."]
    if "outcome" in df.columns and (n_div := df.filter(pl.col("outcome") == "diverged").height):
        intro.append(f"Diverged runs: {n_div}.")
    tables = [metric_table(df, t, data.axes, spec.references) for t in spec.report.tables]
    if tables:
        intro.append(_unshown(df, set().union(*(t.run_ids for t in tables))))
    blocks: list[Block] = []
    if claims:
        blocks.append(claims_section(list(claims)))
    blocks += [t.section() for t in tables]
    blocks += [Figure(f.title, metric_curve(df, f, fig_dir / f.file, data.history), figure_caption(df, f, data.history))
               for f in spec.report.figures]
    blocks += [Figure(h.title, metric_heatmap(df, h, fig_dir / h.file), "Cells: mean over seeds.") for h in spec.report.heatmaps]
    blocks += [*sections, *provenance]
    if not df.is_empty():
        blocks.append(runs_section(df, data.run_urls))
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
            lines += [b.note, ""] if b.note and b.path else []
        else:
            for p in b.lines:
                lines += [p, ""]
            lines += ["```", *b.code, "```", ""] if b.code else []
    return "\n".join(lines)


def write_report(spec: SuiteSpec, data: ReportData, out_dir: Path, claims: Sequence[ClaimResult] | None = None,
                 sections: Sequence[Section] = (), provenance: Sequence[Section | Text] = (), variant: str = "") -> Path:
    """Write the report of `spec` and return the path of report.md.  `claims`: the checked claims (their
    table leads the report; None: checked here); `sections` are extra tables (e.g. tuning results) shown after the figures;
    `provenance` is the reproducibility block (repro.py)."""
    claims = suite_claims(spec, data.frame) if claims is None else claims
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}-"))
    try:
        doc = build_document(spec, data, tmp, claims, sections, provenance, variant)
        (tmp / "report.md").write_text(render_md(doc))
        (tmp / "report.html").write_text(render_html(doc))
        (tmp / "tables.tex").write_text(render_tex(doc))
        for f in sorted(tmp.iterdir()):  # all rendered: move each file into place (os.replace is atomic)
            os.chmod(f, 0o644)
            os.replace(f, out_dir / f.name)
    finally:
        shutil.rmtree(tmp)
    return out_dir / "report.md"
