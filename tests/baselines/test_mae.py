import pytest
import torch
from pydantic import ValidationError
from ssl_fakes import FakeImageTask, tiny_vit
from torch import nn

import baselines  # noqa: F401
from baselines.methods.mae import MAE, MAEConfig, normalize_content
from baselines.ssl.masks import MaskedBatch, Masks
from baselines.ssl.predictors import ConcatPredictorConfig
from baselines.ssl.token_masks import RandomMaskConfig
from baselines.ssl.tokenizers import patchify
from harness.components import METHODS

torch.set_num_threads(1)


def mae(**kw) -> MAE:
    cfg = MAEConfig(name="mae", decoder=ConcatPredictorConfig(d_model=8, n_layers=1, n_heads=2, joint=True), **kw)
    return METHODS.get("mae").build(cfg, tiny_vit(), FakeImageTask())


def batch(method: MAE, seed: int = 0, size: int = 4) -> MaskedBatch:
    gen = torch.Generator().manual_seed(seed)
    return method.collate(next(FakeImageTask().train_batches(size, gen)), gen)


class ZeroDecoder(nn.Module):
    """Predicts 0 for every pixel of every masked patch."""

    def forward(self, visible, visible_idx, masked_idx, layout):
        return torch.zeros(*masked_idx.shape, 4)  # [B, M, Nt, P]


def test_default_mask_is_random_three_quarters():
    cfg = MAEConfig(name="mae")
    assert cfg.mask.name == "random" and cfg.mask.ratio == 0.75 and cfg.norm_pix_loss
    b = batch(mae())
    assert b.masks.context.shape == (4, 4) and b.masks.targets.shape == (4, 1, 12)  # 16 patches, 12 masked


def test_loss_is_only_on_masked_patches():
    m = mae(norm_pix_loss=False)
    m.module["decoder"] = ZeroDecoder()
    images = torch.full((2, 1, 8, 8), 1.0)  # every masked patch: target 1, prediction 0 -> squared error 1
    visible = torch.tensor([[0, 5, 10, 15], [1, 2, 3, 4]])
    masked = torch.stack([torch.tensor([p for p in range(16) if p not in row]) for row in visible.tolist()])
    for row, patches in enumerate(visible.tolist()):
        for patch in patches:  # huge pixels on the visible patches only
            r, c = divmod(patch, 4)
            images[row, :, 2 * r : 2 * r + 2, 2 * c : 2 * c + 2] = 1000.0
    b = MaskedBatch(images, torch.zeros(2, dtype=torch.long), Masks(visible, masked[:, None, :]), m.encoder.layout)
    assert m.loss(b).loss.item() == pytest.approx(1.0)


def test_norm_pix_target():
    images = torch.randn(3, 1, 8, 8) * 5 + 2
    images[0, :, :2, :2] = 7.0  # a constant patch
    t = normalize_content(patchify(images, 2), norm_pix=True)  # [3, 16, 4]
    torch.testing.assert_close(t.mean(-1), torch.zeros(3, 16), atol=1e-5, rtol=0)
    torch.testing.assert_close(t[1:].var(-1), torch.ones(2, 16), atol=1e-3, rtol=0)
    assert torch.equal(t[0, 0], torch.zeros(4))  # a constant patch has target 0
    assert torch.equal(normalize_content(patchify(images, 2), norm_pix=False), patchify(images, 2))


def test_norm_pix_loss_uses_the_normalized_target():
    b = batch(mae())
    raw, normed = mae(norm_pix_loss=False), mae(norm_pix_loss=True)
    raw.module["decoder"] = normed.module["decoder"] = ZeroDecoder()
    masked = b.masks.targets.flatten(1)  # [B, Nm]
    for method, norm in ((raw, False), (normed, True)):
        target = normalize_content(patchify(b.inputs, 2), norm)  # [B, N, P]
        want = torch.stack([target[i, masked[i]] for i in range(len(b))]).pow(2).mean()
        assert method.loss(b).loss.item() == pytest.approx(want.item(), rel=1e-5)


def test_gradients_reach_encoder_and_decoder():
    m = mae()
    m.loss(batch(m)).loss.backward()
    assert all(p.grad is not None for p in m.module.parameters())


def test_collate_is_deterministic_per_generator():
    m = mae(mask=RandomMaskConfig(ratio=0.5))
    a, b, c = batch(m, 0), batch(m, 0), batch(m, 1)
    assert torch.equal(a.masks.context, b.masks.context) and torch.equal(a.masks.targets, b.masks.targets)
    assert not torch.equal(a.masks.context, c.masks.context)
    assert a.masks.context.shape == (4, 8)


def test_evaluate_probes_the_encoder():
    m = mae()
    metrics = m.evaluate()
    assert set(metrics) == {"probe/linear", "probe/knn", "probe_chosen/linear_l2", "collapse/std_mean", "collapse/std_min",
                            "collapse/eff_rank", "collapse/eff_rank_centered", "collapse/log2_rank_centered", "collapse/content_share",
                            "eval/step", "probe_val/linear", "items/probe"}
    assert 0.0 <= metrics["probe/knn"] <= 1.0 and metrics["collapse/std_min"] <= metrics["collapse/std_mean"]
    assert m.encoder.training  # restored after evaluation


def test_config_validation():
    with pytest.raises(ValidationError, match="n_heads=3 must divide d_model=8"):
        MAEConfig(name="mae", decoder={"name": "concat", "d_model": 8, "n_heads": 3})
    with pytest.raises(ValidationError):
        MAEConfig(name="mae", mask={"name": "random", "ratio": 1.5})
    with pytest.raises(TypeError, match="needs a token encoder model"):
        METHODS.get("mae").build(MAEConfig(name="mae"), nn.Linear(2, 2), FakeImageTask())
