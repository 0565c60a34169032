"""`harness expand SUITE --profile paper` (the cost preview of a GPU job) for every shipped suite with a paper
profile, as a whole process: its wall time against `harness expand SUITE` (the suite as written, the same
start-up).  The bar: under 10 s each (copying's took 333 s when the profile's LSTM was traced over 2048 positions
and every configuration was dry-built for real as well)."""

import sys
from pathlib import Path

import pytest
from timing import timed

from harness.spec.find import suite_files
from harness.spec.load import load_suite

pytestmark = pytest.mark.bench
ROOT = Path(__file__).resolve().parents[1]
PAPER = [p.stem for p in suite_files() if "paper" in load_suite(p).spec.profiles]


@pytest.mark.parametrize("suite", PAPER)
def test_paper_profile_cost_preview_time(suite, tmp_path):
    cli = [sys.executable, "-m", "harness.cli", "expand", suite]
    plain, _ = timed(cli, ROOT)
    paper, proc = timed([*cli, "--profile", "paper"], ROOT)
    assert "cost per run" in proc.stdout
    print(f"\n[bench] expand {suite} --profile paper: {paper:.1f} s (expand as written {plain:.1f} s, ratio x{paper / plain:.2f}; "
          f"bar < 10 s{'' if paper < 10 else ': MISSED'})")
