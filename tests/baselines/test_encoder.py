import pytest
import torch
from pydantic import ValidationError
from ssl_fakes import FakeImageTask, tiny_vit

import baselines  # noqa: F401
from baselines.ssl.blocks import gather_targets, gather_tokens
from baselines.ssl.encoder import ViTConfig, build_vit
from baselines.ssl.layout import Layout
from baselines.ssl.positions import SinCosConfig, sincos_2d
from baselines.ssl.predictors import ConcatPredictor, ConcatPredictorConfig
from baselines.ssl.tokenizers import patchify
from harness.components import MODELS

torch.set_num_threads(1)

GRID = Layout.grid(("row", "col"), (4, 4))  # the 4 x 4 patch grid of the tiny ViT


def test_patchify_is_row_major_over_the_grid():
    images = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).view(2, 1, 4, 4)  # [B, C, H, W]
    patches = patchify(images, 2)  # [2, 4, 4]
    assert patches.shape == (2, 4, 4)
    assert patches[0, 0].tolist() == [0, 1, 4, 5]  # top-left patch, rows then columns
    assert patches[0, 1].tolist() == [2, 3, 6, 7]  # top-right
    assert patches[0, 2].tolist() == [8, 9, 12, 13]  # bottom-left
    rgb = torch.randn(1, 3, 4, 4)
    assert torch.equal(patchify(rgb, 2)[0, 3].view(2, 2, 3), rgb[0, :, 2:, 2:].permute(1, 2, 0))


def test_sincos_2d_rows_and_columns():
    pos = sincos_2d(4, 16)  # [16, 16]
    assert pos.shape == (16, 16)
    grid = pos.view(4, 4, 16)
    assert torch.allclose(grid[0, :, :8], grid[0, :1, :8].expand(4, 8))  # first half: the row only
    assert torch.allclose(grid[:, 0, 8:], grid[:1, 0, 8:].expand(4, 8))  # second half: the column only
    assert torch.cdist(pos, pos).add(torch.eye(16)).min() > 0.1  # every patch position is distinct


def test_vit_shapes_and_registry():
    m = MODELS.get("vit").build(ViTConfig(name="vit", patch_size=2, d_model=16, n_layers=1, n_heads=2), FakeImageTask())
    assert (m.layout.shape, m.layout.n_tokens, m.tokenizer.content_dim) == ((4, 4), 16, 4)
    x = torch.randn(3, 1, 8, 8)
    assert m(x).shape == (3, 16, 16)
    keep = torch.tensor([[0, 5, 7], [1, 2, 3], [15, 14, 0]])
    assert m(x, keep=keep).shape == (3, 3, 16)


def test_vit_config_errors():
    with pytest.raises(ValidationError, match="multiple of 4"):
        ViTConfig(name="vit", d_model=18, n_heads=2)
    with pytest.raises(ValidationError, match="must divide"):
        ViTConfig(name="vit", d_model=16, n_heads=3)
    with pytest.raises(ValueError, match="must divide image_size"):
        build_vit(ViTConfig(name="vit", patch_size=3, d_model=16, n_heads=2), FakeImageTask())


def test_vit_needs_an_image_task():
    from conftest import FakeTokenTask

    with pytest.raises(TypeError, match="model vit needs an image task"):
        MODELS.get("vit").build(ViTConfig(name="vit", d_model=16, n_heads=2), FakeTokenTask())


def test_dropped_patches_do_not_influence_kept_tokens():
    m = tiny_vit().eval()
    x = torch.randn(2, 1, 8, 8)
    keep = torch.tensor([[0, 1, 4, 5], [10, 11, 14, 15]])  # the top-left / bottom-right 2x2 patch blocks
    y = x.clone()
    y[0, :, 4:, :] = 100.0  # pixels of patches 8..15, not kept in row 0
    y[1, :, :4, :] = -100.0  # pixels of patches 0..7, not kept in row 1
    with torch.no_grad():
        torch.testing.assert_close(m(x, keep=keep), m(y, keep=keep))
        assert not torch.allclose(m(x), m(y))  # ... which the full encoder does see
        # keeping everything (in order) is the full encoder
        torch.testing.assert_close(m(x, keep=torch.arange(16).expand(2, 16)), m(x))


def test_kept_tokens_attend_to_each_other():
    m = tiny_vit().eval()
    x = torch.randn(1, 1, 8, 8)
    keep = torch.tensor([[0, 15]])
    y = x.clone()
    y[0, :, 6:, 6:] += 5.0  # patch 15 only
    with torch.no_grad():
        assert not torch.allclose(m(x, keep=keep)[:, 0], m(y, keep=keep)[:, 0])  # token of patch 0 sees patch 15


def test_gather_helpers():
    x = torch.arange(2 * 5 * 3, dtype=torch.float32).view(2, 5, 3)  # [B, N, D]
    idx = torch.tensor([[4, 0], [1, 1]])
    assert torch.equal(gather_tokens(x, idx), torch.stack([x[0, [4, 0]], x[1, [1, 1]]]))
    targets = torch.tensor([[[0, 1], [2, 3]], [[4, 3], [2, 1]]])  # [B, M=2, Nt=2]
    got = gather_targets(x, targets)  # [2, 2, 2, 3]
    assert got.shape == (2, 2, 2, 3) and torch.equal(got[1, 0], x[1, [4, 3]])


def test_predictor_output_depends_only_on_its_inputs_and_target_positions():
    torch.manual_seed(0)
    pred = ConcatPredictor(ConcatPredictorConfig(d_model=8, n_layers=1, n_heads=2), 16, 16, SinCosConfig(), GRID).eval()
    ctx = torch.randn(2, 5, 16)  # [B, Nc, D]
    ctx_idx = torch.tensor([[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]])
    tgt = torch.tensor([[[10, 11], [14, 15]], [[0, 1], [12, 13]]])  # [B, M=2, Nt=2]
    with torch.no_grad():
        out = pred(ctx, ctx_idx, tgt, GRID)  # [2, 2, 2, 16]
        assert out.shape == (2, 2, 2, 16)
        # each target block is predicted in its own pass: block 0 alone gives the same prediction
        torch.testing.assert_close(pred(ctx, ctx_idx, tgt[:, :1], GRID), out[:, :1])
        # the mask tokens differ only by position, and that changes the prediction
        assert not torch.allclose(out[0, 0, 0], out[0, 0, 1])


def test_mae_decoder_shapes():
    torch.manual_seed(0)
    dec = ConcatPredictor(ConcatPredictorConfig(d_model=8, n_layers=1, n_heads=2, joint=True), 16, 4, SinCosConfig(), GRID)
    out = dec(torch.randn(2, 4, 16), torch.tensor([[0, 1, 2, 3]] * 2), torch.tensor([[[4, 5, 6]], [[9, 8, 7]]]), GRID)
    assert out.shape == (2, 1, 3, 4)


def test_predictor_queries_carry_their_target_positions():
    """A mask token knows which token it stands for only through the positional encoding of its target index:
    moving a target moves its prediction, permuting the targets permutes the predictions, and the prediction
    of a position does not depend on the order it is asked in."""
    torch.manual_seed(0)
    pred = ConcatPredictor(ConcatPredictorConfig(d_model=8, n_layers=2, n_heads=2), 16, 16, SinCosConfig(), GRID).eval()
    ctx, ctx_idx = torch.randn(1, 4, 16), torch.tensor([[0, 5, 10, 15]])
    with torch.no_grad():
        out = pred(ctx, ctx_idx, torch.tensor([[[1, 2, 3]]]), GRID)[0, 0]  # [3, 16]
        swapped = pred(ctx, ctx_idx, torch.tensor([[[3, 1, 2]]]), GRID)[0, 0]
        torch.testing.assert_close(swapped, out[[2, 0, 1]])  # equivariant: predictions follow their positions
        moved = pred(ctx, ctx_idx, torch.tensor([[[1, 2, 7]]]), GRID)[0, 0]
        assert not torch.allclose(moved[2], out[2])  # target 3 -> 7: another prediction
        for a, b in zip(pred(ctx, ctx_idx, torch.tensor([[[4, 8, 12]]]), GRID)[0, 0], pred(ctx, ctx_idx, torch.tensor([[[12, 8, 4]]]), GRID)[0, 0].flip(0)):
            torch.testing.assert_close(a, b)
