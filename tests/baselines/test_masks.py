import math

import pytest
import torch
from pydantic import BaseModel, ValidationError

from baselines.ssl.grid_masks import BlockMaskConfig, MultiBlockMaskConfig
from baselines.ssl.layout import Layout
from baselines.ssl.masks import MASKS, MaskConfig, MaskedBatch, Masks, MaskStream, build_mask_sampler
from baselines.ssl.token_masks import RandomMaskConfig
from baselines.tasks.labeled import LabeledBatch

torch.set_num_threads(1)


class Holder(BaseModel):  # how a method config embeds a mask config
    mask: MaskConfig


def square(grid: int) -> Layout:
    return Layout.grid(("row", "col"), (grid, grid))


def sample(cfg, grid: int, batch_size: int = 64, seed: int = 0) -> Masks:
    layout = square(grid)
    return build_mask_sampler(cfg, layout)(layout, batch_size, torch.Generator().manual_seed(seed), 0.0)


def check_indices(masks: Masks, grid: int) -> None:
    """In range, long, unique and sorted per row; context disjoint from every target."""
    n = grid * grid
    context, targets = masks.context, masks.targets  # [B, Nc], [B, M, Nt]
    assert context.dtype == targets.dtype == torch.long
    assert targets.dim() == 3 and targets.shape[0] == context.shape[0]
    for idx in (context, targets.flatten(0, 1)):
        assert int(idx.min()) >= 0 and int(idx.max()) < n
        assert (idx[:, 1:] > idx[:, :-1]).all()  # sorted, hence unique
    shown = torch.zeros(len(context), n, dtype=torch.bool).scatter_(1, context, True)  # [B, N]
    hidden = torch.zeros(len(context), n, dtype=torch.bool).scatter_(1, targets.flatten(1), True)
    assert not (shown & hidden).any()


def block_dims(block: torch.Tensor, grid: int) -> tuple[int, int]:
    """(height, width) of the rectangle formed by patch indices `block` [Nt]; asserts it is a full rectangle."""
    rows, cols = block // grid, block % grid
    height, width = int(rows.max() - rows.min()) + 1, int(cols.max() - cols.min()) + 1
    assert height * width == len(block)
    return height, width


@pytest.mark.parametrize("grid", [4, 8, 14])
def test_multiblock_properties(grid):
    cfg = MultiBlockMaskConfig(min_keep=3)
    n = grid * grid
    for seed in range(5):
        masks = sample(cfg, grid, seed=seed)
        check_indices(masks, grid)
        assert masks.context.shape[1] >= cfg.min_keep
        assert masks.targets.shape[:2] == (64, 4)
        dims = {block_dims(block, grid) for block in masks.targets.flatten(0, 1)}
        assert len(dims) == 1  # one block size per batch
        height, width = dims.pop()
        lo, hi = cfg.target_scale
        a_lo, a_hi = cfg.target_aspect
        # height = round(sqrt(area * aspect)), width = round(sqrt(area / aspect)), clipped to [1, grid]
        assert max(1, round(math.sqrt(lo * n * a_lo))) <= height <= min(grid, round(math.sqrt(hi * n * a_hi)))
        assert max(1, round(math.sqrt(lo * n / a_hi))) <= width <= min(grid, round(math.sqrt(hi * n / a_lo)))


def test_multiblock_scale_and_aspect_on_a_fine_grid():
    grid = 32  # fine enough for rounding to matter little
    cfg = MultiBlockMaskConfig(target_scale=(0.1, 0.15), target_aspect=(0.75, 1.5))
    for seed in range(20):
        height, width = block_dims(sample(cfg, grid, batch_size=2, seed=seed).targets[0, 0], grid)
        assert 0.1 - 0.02 <= height * width / grid**2 <= 0.15 + 0.02
        assert 0.75 - 0.1 <= height / width <= 1.5 + 0.1


def test_multiblock_context_is_a_truncated_block_minus_targets():
    grid = 8
    cfg = MultiBlockMaskConfig(n_targets=1, target_scale=(0.1, 0.1), context_scale=(0.25, 0.25), min_keep=4)
    masks = sample(cfg, grid, batch_size=32)  # context block 4 x 4, one target block of 6 (2 x 3 or 3 x 2)
    rows, cols = masks.context // grid, masks.context % grid  # [B, Nc]
    assert ((rows.max(1).values - rows.min(1).values) < 4).all()
    assert ((cols.max(1).values - cols.min(1).values) < 4).all()
    assert 16 - 6 <= masks.context.shape[1] < 16  # the batch minimum: a target overlaps some context block
    # with one image there is nothing to truncate: the context is exactly (square block) minus (targets)
    one = sample(MultiBlockMaskConfig(context_scale=(1.0, 1.0)), grid, batch_size=1)
    covered = torch.zeros(grid * grid, dtype=torch.bool)
    covered[one.targets.flatten()] = True
    assert torch.equal(one.context[0], (~covered).nonzero().flatten())


def test_multiblock_min_keep_is_enforced_and_impossible_settings_fail():
    masks = sample(MultiBlockMaskConfig(min_keep=12, target_scale=(0.2, 0.25)), 8, batch_size=128)
    assert masks.context.shape[1] >= 12
    with pytest.raises(RuntimeError, match="min_keep=60"):
        sample(MultiBlockMaskConfig(min_keep=60), 8)
    with pytest.raises(ValueError, match="exceeds the 16 tokens"):
        build_mask_sampler(MultiBlockMaskConfig(min_keep=17), square(4))
    with pytest.raises(ValueError, match="mask multiblock needs a 2-D grid of tokens"):
        build_mask_sampler(MultiBlockMaskConfig(), Layout.grid(("feature",), (16,)))


@pytest.mark.parametrize(
    "cfg", [MultiBlockMaskConfig(), RandomMaskConfig(), BlockMaskConfig()], ids=["multiblock", "random", "block"]
)
def test_samplers_are_deterministic_per_generator(cfg):
    a, b, c = sample(cfg, 8, seed=1), sample(cfg, 8, seed=1), sample(cfg, 8, seed=2)
    assert torch.equal(a.context, b.context) and torch.equal(a.targets, b.targets)
    assert not (a.context.shape == c.context.shape and torch.equal(a.context, c.context))
    gen = torch.Generator().manual_seed(1)
    sampler = build_mask_sampler(cfg, square(8))
    first, second = sampler(square(8), 64, gen, 0.0), sampler(square(8), 64, gen, 0.0)
    assert not (first.targets.shape == second.targets.shape and torch.equal(first.targets, second.targets))


@pytest.mark.parametrize("ratio, grid, n_mask", [(0.75, 8, 48), (0.5, 4, 8), (0.6, 14, 118)])
def test_random_masks(ratio, grid, n_mask):
    masks = sample(RandomMaskConfig(ratio=ratio), grid)
    check_indices(masks, grid)
    assert masks.targets.shape == (64, 1, n_mask) and masks.context.shape == (64, grid * grid - n_mask)
    every = torch.cat([masks.context, masks.targets[:, 0]], dim=1).sort(dim=1).values
    assert torch.equal(every, torch.arange(grid * grid).expand(64, -1))  # a partition of the patches
    # uniform: every patch is masked about ratio of the time
    often = torch.zeros(grid * grid).index_add_(0, masks.targets.flatten(), torch.ones(masks.targets.numel()))
    assert (often / 64 - ratio).abs().max() < 0.3
    with pytest.raises(ValueError, match="masks 0 of the 4 tokens"):
        build_mask_sampler(RandomMaskConfig(ratio=0.1), square(2))


def test_block_masks():
    grid = 8
    cfg = BlockMaskConfig(scale=(0.3, 0.4), aspect=(1.0, 1.0))
    for seed in range(5):
        masks = sample(cfg, grid, seed=seed)
        check_indices(masks, grid)
        assert masks.targets.shape[1] == 1
        height, width = block_dims(masks.targets[0, 0], grid)
        assert height == width and 0.3 * 64 - 8 <= height * width <= 0.4 * 64 + 8  # square, up to rounding
        assert masks.context.shape[1] + height * width == grid * grid  # the complement
    positions = {int(t.min()) for t in masks.targets[:, 0]}
    assert len(positions) > 5  # positions vary per image
    # square blocks of 40-60% of an 8 x 8 grid are at least 5 x 5: wherever placed they cover the central 2 x 2
    with pytest.raises(ValueError, match="central tokens would always be masked"):
        build_mask_sampler(BlockMaskConfig(scale=(0.4, 0.6), aspect=(1.0, 1.0)), square(8))


def test_mask_configs_are_validated_through_the_registry():
    held = Holder.model_validate({"mask": {"name": "multiblock", "target_scale": [0.1, 0.15]}})
    assert isinstance(held.mask, MultiBlockMaskConfig) and held.mask.target_scale == (0.1, 0.15)
    assert isinstance(Holder.model_validate({"mask": {"name": "random", "ratio": 0.5}}).mask, RandomMaskConfig)
    assert isinstance(Holder.model_validate({"mask": {"name": "block"}}).mask, BlockMaskConfig)
    for bad in (
        {"name": "multiblok"},
        {"name": "random", "ratio": 1.0},
        {"name": "random", "target_scale": [0.1, 0.2]},  # a multiblock key on a random mask
        {"name": "multiblock", "target_scale": [0.3, 0.2]},
        {"name": "multiblock", "context_scale": [0.5, 1.2]},
        {"name": "block", "aspect": [0.0, 1.0]},
        {"ratio": 0.5},  # no name
    ):
        with pytest.raises(ValidationError):
            Holder.model_validate({"mask": bad})
    with pytest.raises(ValidationError, match="unknown mask 'multiblok'; did you mean 'multiblock'"):
        Holder.model_validate({"mask": {"name": "multiblok"}})
    # the field serializes as its concrete config, so a RunSpec round-trips with every parameter
    held = Holder.model_validate({"mask": {"name": "random", "ratio": 0.5}})
    assert held.model_dump() == {"mask": {"name": "random", "ratio": 0.5}}
    assert Holder.model_validate(held.model_dump()) == held
    assert MASKS.names() == ["block", "curriculum", "multiblock", "random", "runs", "spatial", "spatiotemporal", "strips",
                            "subsets", "temporal", "tube"]


def test_mask_stream_collates_masked_batches():
    batch = LabeledBatch(torch.randn(6, 1, 16, 16), torch.arange(6))
    stream = MaskStream(build_mask_sampler(RandomMaskConfig(), square(8)), lambda inputs: square(8))
    masked = stream(batch, torch.Generator().manual_seed(0))
    assert isinstance(masked, MaskedBatch) and len(masked) == 6 and masked.layout.shape == (8, 8)
    assert masked.inputs is batch.inputs and masked.labels is batch.labels
    assert masked.masks.context.shape == (6, 16) and masked.masks.targets.shape == (6, 1, 48)
    moved = masked.to(torch.device("cpu"))
    assert torch.equal(moved.masks.targets, masked.masks.targets)
    part = masked.slice(1, 3)
    assert len(part) == 2 and torch.equal(part.masks.context, masked.masks.context[1:3])


def test_a_nested_unknown_key_is_named_with_the_concrete_configs_keys(tmp_path):
    """A typo inside a nested component is reported at its path, with the keys of the component it names."""
    from harness.spec import expand, load_suite
    from harness.spec.errors import SpecError

    with pytest.raises(ValidationError, match="unknown key 'n_targts'; did you mean 'n_targets'"):
        Holder.model_validate({"mask": {"name": "multiblock", "n_targts": 2}})
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\ndefaults:\n  task: {name: digits}\n  model: {name: vit}\n"
                     "  method: {name: jepa, mask: {name: curriculum, easy: {name: multiblock, zzz: 1}}}\n")
    with pytest.raises(SpecError) as err:
        expand(load_suite(suite))
    assert str(err.value) == (f"{suite}:5: defaults.method.mask.easy.zzz: unknown key 'zzz' (allowed: name, n_targets, "
                              "target_scale, target_aspect, context_scale, min_keep)")
