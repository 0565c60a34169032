"""Every registered method's metric-name declaration (`METHODS.register(..., metrics=)`, what `harness validate`
checks a suite's report, claims and tune objectives against) is what a real run of it logs."""

import pytest
import torch
from conftest import Recorder

from harness.components import METHODS
from harness.runner import build, train_stream
from harness.spec import load_and_expand
from harness.train import fit, seed_everything
from harness.validate.resources import dry_build

ONLY_AT_THE_END = {"time/train_seconds", "n_params", "train/diverged_at_step"}  # logged by run_one, not by fit
CASES = {  # method -> (suite, overrides that make it tiny)
    "supervised": ("smoke", ["defaults.training.steps=2", "defaults.evaluation.every=1"]),
    "jepa": ("jepa_vs_mae", ["defaults.training.steps=2", "defaults.training.batch_size=8", "defaults.evaluation.every=1"]),
    "mae": ("jepa_vs_mae", ["defaults.training.steps=2", "defaults.training.batch_size=8", "defaults.evaluation.every=1"]),
    "deep_linear_ssl": ("jepa_theory", ["defaults.training.steps=2"]),
}


def test_every_registered_method_has_a_case():
    assert set(METHODS.names()) - {"needs_tokens"} <= set(CASES)  # (needs_tokens: a test's stand-in, test_stages.py)


@pytest.mark.parametrize("method", sorted(CASES))
def test_declared_metric_names_are_the_logged_ones(method):
    suite, overrides = CASES[method]
    _, runs = load_and_expand(suite, overrides)
    cfg = next(r.config for r in runs if r.config.method.name == method)
    declared = dry_build(cfg).metrics
    torch.set_num_threads(1)
    seed_everything(cfg.seed)
    task, m = build(cfg)
    seen = Recorder()
    fit(m, train_stream(cfg, task, m), cfg, callbacks=[seen])
    logged = {f"train/{k}" for _, scalars in seen.steps for k in scalars} | {k for _, metrics in seen.evals for k in metrics}
    assert logged <= declared, f"logged but not declared: {sorted(logged - declared)}"
    assert declared - ONLY_AT_THE_END <= logged, f"declared but not logged: {sorted(declared - ONLY_AT_THE_END - logged)}"
