"""Two variants of a suite side by side (`harness compare`): for every table of the suite, each cell of A and
of B and B - A with its 95% interval, paired by seed where both hold the same seeds (the same seed is the
same data stream), with the test items' noise for a proportion (harness.report.stats.difference); a cell is
marked where the interval excludes 0.  The variants are the suite under two sets of overrides, or the same
suite read from two stores (two code versions, each run into its own store)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from harness.report import stats
from harness.report.document import Document, Section
from harness.report.frame import items_of, long_format, natural, select, show
from harness.report.render import render_md
from harness.report.results import SuiteResults


def _cells(df: pl.DataFrame, spec) -> dict[tuple, tuple[dict[int, float], int | None]]:
    """(row key..., column) -> ({seed: value}, test items)."""
    long = long_format(select(df, spec.where), spec.metric, spec.rows, spec.columns)
    out = {}
    for key, g in long.group_by([*spec.rows, "x"], maintain_order=True):
        out[tuple(key)] = (dict(zip(g["seed"].to_list(), g["value"].to_list())), items_of(g["items"].to_list()))
    return out


def compare(a: SuiteResults, b: SuiteResults, label_a: str = "A", label_b: str = "B") -> list[Section]:
    """One section per table of the suite: the cells both variants have (module docstring)."""
    out = []
    for spec in a.spec.report.tables:
        ca, cb = _cells(a.frame, spec), _cells(b.frame, spec)
        rows, bold = [], []
        for key in sorted(set(ca) & set(cb), key=lambda k: tuple(natural(v) for v in k)):
            (va, ia), (vb, ib) = ca[key], cb[key]
            common = sorted(set(va) & set(vb))
            is_paired = len(common) >= 2
            x, y = ([vb[s] for s in common], [va[s] for s in common]) if is_paired else (list(vb.values()), list(va.values()))
            d = stats.difference(x, y, is_paired, ib, ia)
            ea, eb = stats.interval(list(va.values()), items=ia), stats.interval(list(vb.values()), items=ib)
            diff = f"{d.diff:+.3f}" + (f" [{d.lo:+.3f}, {d.hi:+.3f}]" if d.has_interval else "")
            seeds = f"{len(common)} paired" if is_paired else f"{len(va)} / {len(vb)} runs"
            rows.append([*map(show, key), _est(ea), _est(eb), diff, seeds])
            bold.append([False] * (len(key) + 2) + [d.has_interval and (d.lo > 0 or d.hi < 0), False])
        header = [*spec.rows, spec.columns or spec.column_label or "column", label_a[:40], label_b[:40], "B − A", "seeds"]
        only = len(set(ca) ^ set(cb))
        note = ("B − A: the mean difference and its 95% interval, paired by seed (else Welch's), with the test items' noise "
                "for a proportion; bold where the interval excludes 0." + (f" {only} cells are in one variant only." if only else ""))
        out.append(Section(f"{spec.title}: B − A", header, rows, note=note, bold=bold))
    return out


def _est(e: stats.Estimate) -> str:
    return "–" if e.n == 0 else f"{e.center:.3f}" + (f" [{e.lo:.3f}, {e.hi:.3f}]" if e.has_interval else "")


def write_comparison(sections: list[Section], out_dir: Path, title: str, intro: list[str]) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "compare.md"
    path.write_text(render_md(Document(title, intro, list(sections))))
    return path
