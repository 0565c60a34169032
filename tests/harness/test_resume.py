"""Resume checkpoints on the real methods: a run cut short and resumed from its last checkpoint ends
bit-identical to an uninterrupted one (model, per-step scalars, evaluation), method state included.
One run of each kind of method: supervised on arithmetic and copying (transformer), I-JEPA (ViT, EMA
target, mask sampling in the data stream), deep linear JEPA (gradient-flow time kept by the method)."""

import pytest
import torch
from conftest import train_resumable

from harness.spec import expand, load_suite
from harness.spec.models import FaultConfig
from harness.train.resume import Stateful, TrainState


def first_run(root, suite: str):
    """The suite's first run, shortened to 12 steps, evaluated at the end only."""
    cfg = expand(load_suite(root / "suites" / f"{suite}.yaml"))[0].config
    return cfg.model_copy(update={
        "training": cfg.training.model_copy(update={"steps": 12}),
        "evaluation": cfg.evaluation.model_copy(update={"every": None}),
    })


train = train_resumable


@pytest.mark.parametrize("suite", ["smoke", "copying_smoke", pytest.param("jepa_vs_mae", marks=pytest.mark.slow), "jepa_theory"])
def test_resumed_run_matches_an_uninterrupted_one(root, tmp_path, suite):
    cfg = first_run(root, suite)
    whole, rec_whole = train(cfg, tmp_path / "whole.pt")
    cut_cfg = cfg.model_copy(update={"training": cfg.training.model_copy(update={"fault": FaultConfig(kind="raise", at_step=8)})})
    train(cut_cfg, tmp_path / "cut.pt")
    state = TrainState.load(tmp_path / "cut.pt")
    assert state.step == 5 and (state.method != {}) == isinstance(whole, Stateful)
    resumed, rec_resumed = train(cfg, tmp_path / "resumed.pt", resume=state)
    assert repr(rec_resumed.steps) == repr(rec_whole.steps[5:])  # steps 6..12: every scalar, exactly
    assert [s for s, _ in rec_resumed.evals] == [12] and repr(rec_resumed.evals) == repr(rec_whole.evals)  # repr: NaN == NaN
    for (k, a), b in zip(whole.module.state_dict().items(), resumed.module.state_dict().values()):
        assert torch.equal(a, b), k
