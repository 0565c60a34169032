"""Every registered method's metric-name declaration (`METHODS.register(..., metrics=)`, what `harness validate`
checks a suite's report, claims and tune objectives against) is what a real run of it logs."""

import pytest
import torch
from conftest import Recorder

from harness.components import METHODS
from harness.runner import build, start_from, train_stream
from harness.spec import load_and_expand
from harness.train import fit, seed_everything
from harness.validate.resources import dry_build

ONLY_AT_THE_END = {"time/train_seconds", "n_params", "train/diverged_at_step"}  # logged by run_one, not by fit
TINY = ["defaults.training.steps=2", "defaults.training.batch_size=8", "defaults.evaluation.every=1"]
TINY_VIT = [*TINY, "defaults.model.d_model=16", "defaults.model.n_heads=2"]  # the names do not depend on the width
CASES = {  # method@suite -> overrides that make it tiny; every mask sampler of the suite's runs is checked
    "supervised@smoke": ["defaults.training.steps=2", "defaults.evaluation.every=1"],
    "jepa@jepa_vs_mae": TINY_VIT,
    "mae@jepa_vs_mae": TINY_VIT,
    "jepa@audio_jepa_smoke": TINY,  # multiblock, strips, curriculum and its inverse
    "jepa@tabular_jepa_smoke": TINY,  # feature-subset masks, the 256-label probes
    "act@policy_jepa_smoke": TINY,  # every auxiliary objective (none, latent, raw)
    "raw@tabular_jepa_smoke": TINY,
    "probe@smoke_probe": ["defaults.training.steps=2"],  # the probe stage (its source built untrained here)
    "finetune@smoke_probe": ["stages.finetune.defaults.training.steps=2"],
    "deep_linear_ssl@jepa_theory": ["defaults.training.steps=2"],
    "jepa@multimodal_jepa_smoke": ["defaults.training.steps=2"],  # temporal and tube masks
    "pair_jepa@multimodal_jepa_smoke": ["defaults.training.steps=2"],
    "ti_jepa@multimodal_jepa_smoke": ["defaults.training.steps=2"],  # stages: their sources built untrained here
    "intent_decoder@multimodal_jepa_smoke": ["defaults.training.steps=2"],
    "mc_jepa@motion_jepa_smoke": TINY,  # the joint arm; every arm: tests/baselines/test_motion.py
    "scripted@policy_jepa_smoke": TINY,  # the expert and the still policy (the suite's reference arms)
}


def test_every_registered_method_has_a_case():
    covered = {case.split("@")[0] for case in CASES}
    assert set(METHODS.names()) - {"needs_tokens"} <= covered  # (needs_tokens: a test's stand-in, test_stages.py)


def one_per_mask(runs, method):
    """The first run of `method` for each distinct mask sampler (or auxiliary objective: act) config."""
    seen = {}
    for r in runs:
        if r.config.method.name == method:
            mask = getattr(r.config.method, "mask", None) or getattr(r.config.method, "aux", None)
            seen.setdefault(None if mask is None else mask.model_dump_json(), r.config)
    return list(seen.values())


@pytest.mark.parametrize("case", sorted(CASES))
def test_declared_metric_names_are_the_logged_ones(case):
    method, suite = case.split("@")
    _, runs = load_and_expand(suite, CASES[case])
    for cfg in one_per_mask(runs, method):
        check_declared(cfg)


def few_probe_steps(cfg):
    """`cfg` with its trained probes (the attentive one) cut to 2 steps: the names, not the scores, are checked."""
    probes = getattr(cfg.method, "probes", None)
    if probes is None:
        return cfg
    probes = [p.model_copy(update={"steps": 2}) if "steps" in type(p).model_fields else p for p in probes]
    return cfg.model_copy(update={"method": cfg.method.model_copy(update={"probes": probes})})


def check_declared(cfg):
    cfg = few_probe_steps(cfg)
    declared = dry_build(cfg).metrics
    torch.set_num_threads(1)
    seed_everything(cfg.seed)
    task, m = build(cfg)
    if cfg.source is not None:
        start_from(m, build(cfg.source.config)[1])
    seen = Recorder()
    fit(m, train_stream(cfg, task, m), cfg, callbacks=[seen])
    logged = {f"train/{k}" for _, scalars in seen.steps for k in scalars} | {k for _, metrics in seen.evals for k in metrics}
    assert logged <= declared, f"logged but not declared: {sorted(logged - declared)}"
    assert declared - ONLY_AT_THE_END <= logged, f"declared but not logged: {sorted(declared - ONLY_AT_THE_END - logged)}"
