"""Every registered mask sampler: coverage over many draws, disjointness, determinism (also through a real run's
mask stream), and the schedule-aware samplers (curriculum, MaskStream's progress)."""

import pytest
import torch

import baselines  # noqa: F401
from baselines.ssl.curriculum import CurriculumMaskConfig, hard_probability
from baselines.ssl.grid_masks import MultiBlockMaskConfig, StripsMaskConfig
from baselines.ssl.layout import Layout
from baselines.ssl.masks import MASKS, Masks, MaskStream, build_mask_sampler
from baselines.ssl.sequencer import RunsMaskConfig
from baselines.ssl.signal_masks import SpatialMaskConfig, SpatiotemporalMaskConfig
from baselines.ssl.token_masks import RandomMaskConfig, SubsetsMaskConfig
from baselines.ssl.video import TemporalMaskConfig, TubeMaskConfig
from baselines.tasks.labeled import LabeledBatch
from baselines.tasks.signals import fibonacci_hemisphere
from harness.runner import build, train_stream
from harness.spec import expand, load_suite

torch.set_num_threads(1)

IMAGE = Layout.grid(("row", "col"), (8, 8))
SPECTRO = Layout.grid(("freq", "time"), (8, 8))
TABLE = Layout.grid(("feature",), (28,))
VIDEO = Layout.grid(("time", "row", "col"), (4, 4, 4))
POINTS = Layout(("x", "y", "z"), torch.rand(16, 32, 3, generator=torch.Generator().manual_seed(0)))  # per-sample centers
EEG = Layout.grid(("channel", "time"), (16, 8), positions=fibonacci_hemisphere(16).repeat_interleave(8, dim=0))
FMRI = Layout.grid(("channel", "time"), (24, 6))

# one (config, layout) per registered sampler: a new sampler fails test_every_sampler_has_a_coverage_case until added
COVERAGE = {
    "multiblock": (MultiBlockMaskConfig(), IMAGE),
    "block": (MASKS.get("block").config(), IMAGE),
    "strips": (StripsMaskConfig(), SPECTRO),
    "random": (RandomMaskConfig(), IMAGE),
    "subsets": (SubsetsMaskConfig(), TABLE),
    "curriculum": (CurriculumMaskConfig(), SPECTRO),
    "temporal": (TemporalMaskConfig(), VIDEO),
    "tube": (TubeMaskConfig(), VIDEO),
    "runs": (RunsMaskConfig(), POINTS),
    "spatial": (SpatialMaskConfig(), EEG),
    "spatiotemporal": (SpatiotemporalMaskConfig(), FMRI),
}


def draws(cfg, layout: Layout, n_batches: int = 25, batch_size: int = 16, seed: int = 0) -> list[Masks]:
    sampler = build_mask_sampler(cfg, layout)
    gen = torch.Generator().manual_seed(seed)
    return [sampler(layout, batch_size, gen, progress=i / n_batches) for i in range(n_batches)]


def membership(masks: Masks, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(in context, in some target), boolean [B, N]."""
    B = len(masks)
    context = torch.zeros(B, n, dtype=torch.bool).scatter_(1, masks.context, True)
    target = torch.zeros(B, n, dtype=torch.bool).scatter_(1, masks.targets.flatten(1), True)
    return context, target


def test_every_sampler_has_a_coverage_case():
    assert sorted(COVERAGE) == MASKS.names()


@pytest.mark.parametrize("name", sorted(COVERAGE))
def test_coverage_over_400_draws(name):
    """No position is never masked or always masked, none never or always in the context (the ijepa multi-block
    collator never masked the centre at large batches; an off-by-one never masked the last row)."""
    cfg, layout = COVERAGE[name]
    n = layout.n_tokens
    in_context, in_target = torch.zeros(n), torch.zeros(n)
    total = 0
    sampler = build_mask_sampler(cfg, layout)
    for masks in draws(cfg, layout):
        context, target = membership(masks, n)
        assert masks.context.dtype == masks.targets.dtype == torch.long and masks.targets.dim() == 3
        assert int(masks.context.min()) >= 0 and int(masks.targets.max()) < n
        assert (masks.context[:, 1:] > masks.context[:, :-1]).all()  # sorted, unique
        assert (masks.targets[..., 1:] > masks.targets[..., :-1]).all()
        if not sampler.overlap:
            assert not (context & target).any()
        in_context += context.sum(0)
        in_target += target.sum(0)
        total += len(masks)
    assert total == 400
    for share, what in ((in_target / total, "target"), (in_context / total, "context")):
        assert share.min() > 0, f"{name}: a position is never in a {what}: {share.argmin().item()}"
        assert share.max() < 1, f"{name}: a position is always in a {what}: {share.argmax().item()}"


@pytest.mark.parametrize("name", sorted(COVERAGE))
def test_samplers_are_deterministic_per_generator(name):
    cfg, layout = COVERAGE[name]
    a, b, c = draws(cfg, layout, 3), draws(cfg, layout, 3), draws(cfg, layout, 3, seed=1)
    assert all(torch.equal(x.context, y.context) and torch.equal(x.targets, y.targets) for x, y in zip(a, b))
    assert not all(x.targets.shape == z.targets.shape and torch.equal(x.targets, z.targets) for x, z in zip(a, c))


def test_masks_are_seeded_from_the_runs_generator(root):
    """The masks of a real run (jepa on digits) come from the run's mask stream: the same seed gives the same
    masks, another seed other masks."""
    runs = expand(load_suite(root / "suites" / "jepa_vs_mae.yaml", ["grid.task.name=[digits]", "seeds=[0,1]"]))
    jepa = [r.config for r in runs if r.config.method.name == "jepa"]
    first = {cfg.seed: cfg for cfg in jepa}

    def masks(cfg):
        task, method = build(cfg)
        stream = train_stream(cfg, task, method)
        return [next(stream).masks for _ in range(3)]

    again, other = masks(first[0]), masks(first[1])
    for x, y in zip(masks(first[0]), again):
        assert torch.equal(x.context, y.context) and torch.equal(x.targets, y.targets)
    assert not all(x.context.shape == z.context.shape and torch.equal(x.context, z.context) for x, z in zip(again, other))


def test_strips_span_the_other_axis():
    masks = draws(StripsMaskConfig(axes=("time",), n_targets=2, width=2), SPECTRO, n_batches=1)[0]
    assert masks.targets.shape == (16, 2, 16) and masks.context.shape == (16, 64 - 32)
    for block in masks.targets.flatten(0, 1):
        freq, time = block // 8, block % 8  # (freq, time) grid, index f * 8 + t
        assert sorted(set(freq.tolist())) == list(range(8))  # every frequency ...
        assert len(set(time.tolist())) == 2 and time.max() - time.min() == 1  # ... of 2 adjacent time steps
    bands = draws(StripsMaskConfig(axes=("freq",), n_targets=3), SPECTRO, n_batches=1)[0]
    assert all(len(set((b // 8).tolist())) == 1 and len(b) == 8 for b in bands.targets.flatten(0, 1))
    with pytest.raises(ValueError, match="leave no context"):
        build_mask_sampler(StripsMaskConfig(axes=("freq",), n_targets=4, width=2), SPECTRO)
    with pytest.raises(ValueError, match="not 'time'"):
        build_mask_sampler(StripsMaskConfig(), IMAGE)  # an image has no time axis


def test_subsets_sizes_and_disjointness():
    cfg = SubsetsMaskConfig(n_targets=4, context_share=(0.25, 0.25), target_share=(0.5, 0.5))
    masks = draws(cfg, TABLE, n_batches=1)[0]
    assert masks.context.shape == (16, 7) and masks.targets.shape == (16, 4, 14)
    context, target = membership(masks, 28)
    assert not (context & target).any()
    assert (target.sum(1) > 14).any()  # target subsets overlap each other, not the context


def test_curriculum_schedule():
    assert hard_probability(0.0, 0.01, False) == pytest.approx(0.01)
    assert hard_probability(0.25, 0.01, False) == pytest.approx(0.5, abs=1e-3)
    assert hard_probability(0.5, 0.01, False) == pytest.approx(0.7071, abs=1e-3)
    assert hard_probability(1.0, 0.01, False) == 1.0
    assert hard_probability(0.0, 0.01, True) == 1.0 and hard_probability(0.75, 0.01, True) == pytest.approx(0.5, abs=1e-3)
    for inverse in (False, True):
        cfg = CurriculumMaskConfig(inverse=inverse)
        sampler = build_mask_sampler(cfg, SPECTRO)
        gen = torch.Generator().manual_seed(0)
        for progress in (0.05, 0.5, 0.95):
            hard = [sampler(SPECTRO, 4, gen, progress).stats["mask/hard"] for _ in range(300)]
            assert sum(hard) / 300 == pytest.approx(hard_probability(progress, 0.01, inverse), abs=0.1)


def test_curriculum_advances_the_runs_generator_the_same_at_any_progress():
    """A resumed run replays its mask stream before it knows the progress: the stream must not depend on it."""
    sampler = build_mask_sampler(CurriculumMaskConfig(), SPECTRO)
    states = []
    for progress in (0.0, 0.99):
        gen = torch.Generator().manual_seed(3)
        sampler(SPECTRO, 8, gen, progress)
        states.append(gen.get_state())
    assert torch.equal(states[0], states[1])


def test_mask_stream_passes_the_training_progress():
    seen = []

    class Recording:
        overlap = False

        def __call__(self, layout, batch_size, generator, progress):
            seen.append(progress)
            return Masks(torch.zeros(batch_size, 1, dtype=torch.long), torch.ones(batch_size, 1, 1, dtype=torch.long))

    stream = MaskStream(Recording(), lambda inputs: TABLE)
    batch, gen = LabeledBatch(torch.zeros(2, 28), torch.zeros(2)), torch.Generator()
    stream(batch, gen)  # step 1: the total is not known yet, and the progress is 0 anyway
    stream.saw_step(10)  # after_step(1, 10)
    for _ in range(9):
        stream(batch, gen)
    assert seen == [k / 10 for k in range(10)]
    restored = MaskStream(Recording(), lambda inputs: TABLE)
    restored.load_state_dict(stream.state_dict())
    assert (restored.drawn, restored.total) == (10, 10)
