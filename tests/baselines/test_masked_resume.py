"""A JEPA whose mask sampler follows the training progress (a curriculum) resumes bit-identically: the
method counts the batches it collated, the run replays its data stream from the seed, and the curriculum
draws the same amount from the mask stream whatever the progress (tests/harness/test_resume.py's check)."""

import torch
from conftest import train_resumable

import baselines  # noqa: F401
from baselines.methods.jepa import JEPAConfig
from baselines.ssl.curriculum import CurriculumMaskConfig
from baselines.ssl.encoder import ViTConfig
from baselines.ssl.grid_masks import MultiBlockMaskConfig, StripsMaskConfig
from baselines.ssl.predictors import ConcatPredictorConfig
from baselines.tasks.images import DigitsConfig
from harness.spec.models import EvaluationConfig, FaultConfig, RunConfig, TrainingConfig
from harness.train.resume import TrainState

torch.set_num_threads(1)

CURRICULUM = CurriculumMaskConfig(
    easy=MultiBlockMaskConfig(n_targets=2, min_keep=2),
    hard=StripsMaskConfig(axes=("row", "col"), n_targets=1),
)


def config(fault: FaultConfig | None = None) -> RunConfig:
    return RunConfig(
        task=DigitsConfig(name="digits", image_size=8),
        model=ViTConfig(name="vit", patch_size=2, d_model=16, n_layers=1, n_heads=2),
        method=JEPAConfig(name="jepa", mask=CURRICULUM, predictor=ConcatPredictorConfig(d_model=8, n_layers=1, n_heads=2)),
        training=TrainingConfig(steps=12, batch_size=8, log_every=1, fault=fault),
        evaluation=EvaluationConfig(every=None),
    )


def test_curriculum_jepa_resumes_bit_identically(tmp_path):
    whole, rec_whole = train_resumable(config(), tmp_path / "whole.pt")
    hard = [scalars["mask/hard"] for _, scalars in rec_whole.steps]
    assert 0.0 in hard and 1.0 in hard  # both samplers were used along the run
    assert [round(s["mask/p_hard"], 6) for _, s in rec_whole.steps][:2] == [0.01, round((1 / 12 * (1 - 1e-4) + 1e-4) ** 0.5, 6)]
    train_resumable(config(FaultConfig(kind="raise", at_step=8)), tmp_path / "cut.pt")
    state = TrainState.load(tmp_path / "cut.pt")
    assert state.step == 5 and state.method["drawn"] == 5 and state.method["total"] == 12
    resumed, rec_resumed = train_resumable(config(), tmp_path / "resumed.pt", resume=state)
    assert repr(rec_resumed.steps) == repr(rec_whole.steps[5:])  # steps 6..12: every scalar, masks' stats included
    assert repr(rec_resumed.evals) == repr(rec_whole.evals)
    for (k, a), b in zip(whole.module.state_dict().items(), resumed.module.state_dict().values()):
        assert torch.equal(a, b), k
