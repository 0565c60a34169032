"""Golden test: the smoke suite's report tables (seeded, deterministic on CPU), run through the real CLI,
against the stored expected tables in golden/smoke_tables.csv (per cell: runs, seeds, mean, its 95%
interval and the std over seeds; tolerance 1e-6).

The golden file is written only on request, after a change that is meant to move the numbers:
    UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/harness/test_golden.py
(then check the diff of tests/harness/golden/smoke_tables.csv before committing it)."""

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import cli

from harness import pipeline
from harness.report import metric_table

pytestmark = pytest.mark.slow
GOLDEN = Path(__file__).parent / "golden" / "smoke_tables.csv"
COLUMNS = ["table", "row", "column", "runs", "seeds", "mean", "lo", "hi", "std"]
NUMBERS = ["mean", "lo", "hi", "std"]


def smoke_tables(root: Path, tmp: Path) -> tuple[pd.DataFrame, str, dict[str, int]]:
    """Every table of the smoke report in long form (full precision), the rendered report.md, and each
    table's decimals."""
    suite = root / "suites" / "smoke.yaml"
    proc = cli(root, tmp, "run", str(suite), "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    results = pipeline.results(suite, f"sqlite:///{tmp}/mlflow.db")
    rows = []
    for spec in results.spec.report.tables:
        for r in metric_table(results.frame, spec, results.axes()).long().iter_rows(named=True):
            rows.append([spec.title, r["row"], r["column"], r["runs"], r["seeds"], r["center"], r["lo"], r["hi"], r["sd"]])
    check = cli(root, tmp, "report", str(suite), "--check")  # the CI use of the smoke suite's claims
    assert check.returncode == 0 and "claim PASS         plumbing: 0.00..0.00 over 12 points of 4 runs; 0.13..0.53 over 12 points of 4 runs" in check.stderr, check.stderr
    decimals = {t.title: t.decimals for t in results.spec.report.tables}
    return pd.DataFrame(rows, columns=COLUMNS), (tmp / "reports" / "smoke" / "report.md").read_text(), decimals


def test_smoke_tables_match_the_golden_file(root, tmp_path):
    got, report, decimals = smoke_tables(root, tmp_path)
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(exist_ok=True)
        got.to_csv(GOLDEN, index=False, float_format="%.17g")
        pytest.skip(f"golden file written: {GOLDEN}")
    want = pd.read_csv(GOLDEN, dtype={"row": str, "column": str})
    keys = ["table", "row", "column", "runs", "seeds"]
    # cells compared in a fixed order: a table lists its rows in the order the store returns the runs
    got, want = (f.sort_values(["table", "row", "column"], kind="stable").reset_index(drop=True) for f in (got, want))
    assert got[keys].values.tolist() == want[keys].values.tolist()
    np.testing.assert_allclose(got[NUMBERS].to_numpy(float), want[NUMBERS].to_numpy(float), rtol=0, atol=1e-6)
    # the rendered report shows the same numbers: each golden cell's mean [interval], to the table's decimals; a cell whose
    # seeds agree on a metric without test items has no interval (exact match declares its 32 test rows: it has one)
    for _, w in want.iterrows():
        d = decimals[w["table"]]
        shown = f"{w['mean']:.{d}f}" + ("" if np.isnan(w["lo"]) else f" [{w['lo']:.{d}f}, {w['hi']:.{d}f}]")
        assert f"| {shown} |" in report or f"| {shown} ≈ |" in report, shown
