import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import baselines  # noqa: E402,F401  (fills the registries)

sys.path.insert(0, str(ROOT / "tests" / "harness"))
pytest_plugins = ["team_fixtures"]  # session fixtures of the team stack (tests/harness/test_team.py, test_slurm.py)


@pytest.fixture
def root() -> Path:
    return ROOT


TINY_SUITE = """\
name: t
defaults:
  task: {name: arithmetic, op: add, train_digits: [1, 3], test_digits: [3, 4], max_digits: 4, train_size: 64, test_size: 8}
  model: {name: transformer, d_model: 16, n_layers: 1, n_heads: 2}
  method: {name: supervised}
  training: {steps: 5, batch_size: 8}
"""  # the smallest valid suite (7 lines): tests append to it or replace in it


class Recorder:
    """A loop callback that keeps every (step, scalars) and (step, metrics) it sees."""

    def __init__(self):
        self.steps, self.evals = [], []

    def on_step(self, step, scalars):
        self.steps.append((step, scalars))

    def on_eval(self, step, metrics):
        self.evals.append((step, metrics))

    @property
    def eval_steps(self):
        return [step for step, _ in self.evals]


def train_resumable(cfg, path, resume=None):
    """Train the RunConfig `cfg` through the one loop with a resume checkpoint every 5 steps at `path` (from
    `resume`, a loaded TrainState, when given); an injected fault ends it quietly.  Returns (method, Recorder)."""
    from harness.runner import build, train_stream
    from harness.train import fit, seed_everything
    from harness.train.loop import InjectedFault
    from harness.train.resume import Checkpointer

    seed_everything(cfg.seed)
    task, method = build(cfg)
    rec = Recorder()
    try:
        fit(method, train_stream(cfg, task, method), cfg, [rec], checkpointer=Checkpointer(path, 5), resume=resume)
    except InjectedFault:
        pass
    return method, rec


class FakeTokenTask:
    """A token task with no data: enough to build sequence models in unit tests."""

    def __init__(self, vocab_size: int = 11, max_len: int = 40) -> None:
        self.vocab_size, self.max_len = vocab_size, max_len

    def train_batches(self, batch_size, generator):
        raise NotImplementedError("FakeTokenTask has no data")

    def eval_splits(self):
        return {}

    @staticmethod
    def examples_in(batch) -> int:
        return len(batch)


def cli(root: Path, cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`python -m harness.cli ARGS` in a subprocess, with MLflow (sqlite) and reports inside `cwd` (`env`: more
    environment variables; a PYTHONPATH there goes after the repository's)."""
    extra = dict(env or {})
    path = os.pathsep.join([str(root), *([extra.pop("PYTHONPATH")] if "PYTHONPATH" in extra else [])])
    env = {**os.environ, "PYTHONPATH": path, "MLFLOW_DISABLE_TELEMETRY": "true", **extra}
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args, "--tracking-uri", f"sqlite:///{cwd}/mlflow.db", "--reports-dir", str(cwd / "reports")],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
    )


def report_dir(cwd: Path, suite: str) -> Path:
    """The report folder `cli` wrote for `suite`: reports/<suite>/, or a variant's reports/<suite>+<hash>/ (a run with
    overrides); exactly one of them."""
    found = [p for p in (cwd / "reports").glob(f"{suite}*") if p.name == suite or p.name.startswith(f"{suite}+")]
    assert len(found) == 1, found
    return found[0]


def child_runs(cwd: Path, suite: str):
    """(child runs, parent runs) of a suite's experiment in the store written by `cli`."""
    from harness.track import Tracker

    t = Tracker(f"sqlite:///{cwd}/mlflow.db")
    exp = t.client.get_experiment_by_name(suite)
    runs = t.client.search_runs([exp.experiment_id])
    return [r for r in runs if "run_id" in r.data.tags], [r for r in runs if "run_id" not in r.data.tags]


def write_suite(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    """A suite file in tmp_path (the text dedented)."""
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def spec_error(path: Path, overrides=()) -> str:
    """The one-line SpecError that loading and expanding the suite at `path` raises."""
    from harness.spec import SpecError, expand, load_suite

    with pytest.raises(SpecError) as ei:
        expand(load_suite(path, list(overrides)))
    msg = str(ei.value)
    assert "\n" not in msg
    return msg
