import pytest
import torch
from pydantic import ValidationError
from ssl_fakes import FakeImageTask, tiny_vit
from torch import nn

import baselines  # noqa: F401
from baselines.methods.jepa import JEPA, JEPAConfig
from baselines.ssl.grid_masks import MultiBlockMaskConfig
from baselines.ssl.masks import MaskedBatch, Masks
from baselines.ssl.predictors import ConcatPredictorConfig
from baselines.ssl.targets import ema_momentum, ema_update, latent_loss
from harness.components import METHODS
from harness.spec.models import OptimizerConfig
from harness.train.optim import build_optimizer

torch.set_num_threads(1)

MASK = MultiBlockMaskConfig(n_targets=2, target_scale=(0.1, 0.2), min_keep=2)


def jepa(**kw) -> JEPA:
    cfg = JEPAConfig(name="jepa", predictor=ConcatPredictorConfig(d_model=8, n_layers=1, n_heads=2), mask=MASK, **kw)
    return METHODS.get("jepa").build(cfg, tiny_vit(), FakeImageTask())


def batch(method: JEPA, seed: int = 0, size: int = 4) -> MaskedBatch:
    gen = torch.Generator().manual_seed(seed)
    return method.collate(next(FakeImageTask().train_batches(size, gen)), gen)


def test_ema_update_math():
    torch.manual_seed(0)
    online, target = nn.Linear(3, 2), nn.Linear(3, 2)
    before = [p.detach().clone() for p in target.parameters()]
    ema_update(target, online, 0.9)
    for t, b, o in zip(target.parameters(), before, online.parameters()):
        torch.testing.assert_close(t, 0.9 * b + 0.1 * o)
    ema_update(target, online, 1.0)  # momentum 1: frozen
    ema_update(target, online, 0.0)  # momentum 0: a copy
    for t, o in zip(target.parameters(), online.parameters()):
        assert torch.equal(t, o)


def test_momentum_schedule_endpoints():
    assert ema_momentum(1, 100, 0.996, 1.0) == 0.996
    assert ema_momentum(100, 100, 0.996, 1.0) == 1.0
    assert ema_momentum(1, 1, 0.99, 1.0) == 0.99  # a one-step run uses the start value
    ms = [ema_momentum(s, 100, 0.99, 1.0) for s in range(1, 101)]
    assert all(a < b for a, b in zip(ms, ms[1:]))  # rises linearly
    assert ms[50] - ms[49] == pytest.approx(0.01 / 99)


def test_after_step_updates_the_target_toward_the_encoder():
    m = jepa(ema_start=0.5)
    with torch.no_grad():
        for p in m.encoder.parameters():
            p.add_(1.0)
    before = [p.clone() for p in m.target.parameters()]
    m.after_step(1, 10)
    assert m.momentum == 0.5
    for t, b, o in zip(m.target.parameters(), before, m.encoder.parameters()):
        torch.testing.assert_close(t, 0.5 * b + 0.5 * o)


def test_target_starts_as_a_frozen_copy_of_the_encoder():
    m = jepa()
    assert m.target is not m.encoder
    for t, o in zip(m.target.parameters(), m.encoder.parameters()):
        assert torch.equal(t, o) and not t.requires_grad and o.requires_grad


def test_stop_gradient_no_grad_reaches_the_target():
    m = jepa()
    opt = build_optimizer(m.module, OptimizerConfig(lr=1e-2))
    before = [p.clone() for p in m.target.parameters()]
    out = m.loss(batch(m))
    out.loss.backward()
    assert all(p.grad is None for p in m.target.parameters())
    assert all(p.grad is not None for p in m.encoder.parameters())
    assert all(p.grad is not None for p in m.predictor.parameters())
    opt.step()
    for t, b in zip(m.target.parameters(), before):
        assert torch.equal(t, b)  # the optimizer never touches the target
    assert not all(torch.equal(p, b) for p, b in zip(m.encoder.parameters(), before))
    trained = {id(p) for group in opt.param_groups for p in group["params"]}
    assert not trained & {id(p) for p in m.target.parameters()}


def test_predictions_see_only_the_context_patches():
    m = jepa()
    m.module.eval()
    b = batch(m)
    ctx, tgt = b.masks.context, b.masks.targets  # [B, Nc], [B, M, Nt]
    images = b.inputs.clone()  # [B, 1, 8, 8]
    changed = images.clone()
    for row in range(len(b)):
        hidden = sorted(set(range(16)) - set(ctx[row].tolist()))  # non-context patches of this image
        for patch in hidden:
            r, c = divmod(patch, 4)
            changed[row, :, 2 * r : 2 * r + 2, 2 * c : 2 * c + 2] = 50.0
    with torch.no_grad():
        a = m.predictor(m.encoder(images, b.layout, keep=ctx), ctx, tgt, b.layout)  # [B, M, Nt, D]
        z = m.predictor(m.encoder(changed, b.layout, keep=ctx), ctx, tgt, b.layout)
        torch.testing.assert_close(a, z)
        # ... but the targets do change: they come from the full image
        assert not torch.allclose(m.target_tokens(images, b.layout, tgt), m.target_tokens(changed, b.layout, tgt))


def test_target_tokens_are_layer_normed_over_features():
    m = jepa()
    b = batch(m)
    h = m.target_tokens(b.inputs, b.layout, b.masks.targets)  # [B, M, Nt, D]
    assert h.shape == (*b.masks.targets.shape, 16) and not h.requires_grad
    torch.testing.assert_close(h.mean(-1), torch.zeros(h.shape[:-1]), atol=1e-5, rtol=0)
    torch.testing.assert_close(h.var(-1, unbiased=False), torch.ones(h.shape[:-1]), atol=1e-3, rtol=0)


def test_loss_kinds():
    b = batch(jepa())
    l2, sl1 = jepa(loss="l2").loss(b), jepa(loss="smooth_l1").loss(b)
    assert l2.loss.item() > 0 and sl1.loss.item() > 0 and l2.loss.item() != pytest.approx(sl1.loss.item())
    assert l2.metrics["ema_momentum"] == 0.996


def test_collate_draws_masks_deterministically_per_generator():
    m = jepa()
    a, b, c = batch(m, seed=0), batch(m, seed=0), batch(m, seed=1)
    assert isinstance(a.masks, Masks) and torch.equal(a.inputs, b.inputs)
    assert torch.equal(a.masks.context, b.masks.context) and torch.equal(a.masks.targets, b.masks.targets)
    assert not (a.masks.targets.shape == c.masks.targets.shape and torch.equal(a.masks.targets, c.masks.targets))
    for row in range(len(a)):  # context and targets are disjoint
        assert not set(a.masks.context[row].tolist()) & set(a.masks.targets[row].flatten().tolist())


def test_evaluate_probes_the_target_encoder():
    m = jepa()
    metrics = m.evaluate()
    assert set(metrics) == {
        "probe/linear", "probe/knn", "probe_chosen/linear_l2", "collapse/std_mean", "collapse/std_min",
        "collapse/eff_rank", "collapse/eff_rank_centered", "collapse/log2_rank_centered", "collapse/content_share",
        "ema/momentum", "eval/step", "probe_val/linear", "items/probe",
    }
    assert 0.0 <= metrics["probe/linear"] <= 1.0 and 0.0 <= metrics["probe/knn"] <= 1.0
    assert metrics["collapse/eff_rank"] >= 1.0 and metrics["ema/momentum"] == 0.996
    # the target, not the context encoder, is probed: perturbing the encoder alone changes nothing
    with torch.no_grad():
        for p in m.encoder.parameters():
            p.add_(torch.randn_like(p))
    assert m.evaluate() == metrics
    assert m.encoder.training and not m.target.training  # evaluation restores the modes


def test_config_validation_and_default_mask():
    cfg = JEPAConfig(name="jepa")
    assert cfg.mask.name == "multiblock" and cfg.loss == "l2" and cfg.ema_start == 0.996
    with pytest.raises(ValidationError, match="ema_end"):
        JEPAConfig(name="jepa", ema_start=0.99, ema_end=0.9)
    with pytest.raises(ValidationError, match="n_heads=3 must divide d_model=8"):
        JEPAConfig(name="jepa", predictor={"name": "concat", "d_model": 8, "n_heads": 3})
    with pytest.raises(ValidationError, match="unknown predictor 'conact'; did you mean 'concat'"):
        JEPAConfig(name="jepa", predictor={"name": "conact"})
    with pytest.raises(TypeError, match="needs a token encoder model"):
        METHODS.get("jepa").build(cfg, nn.Linear(2, 2), FakeImageTask())


def test_module_holds_encoder_predictor_and_target():
    m = jepa()
    state = m.module.state_dict()  # what the loop moves to the device and checkpoints
    assert any(k.startswith("target.") for k in state) and any(k.startswith("predictor.") for k in state)


def test_latent_losses():
    pred, target = torch.tensor([[0.0, 3.0]]), torch.tensor([[1.0, 1.0]])
    assert latent_loss(pred, target, "l2").item() == pytest.approx((1 + 4) / 2)
    assert latent_loss(pred, target, "l1").item() == pytest.approx((1 + 2) / 2)
    assert latent_loss(pred, target, "smooth_l1", beta=2.0).item() == pytest.approx((0.5 * 1 / 2 + (2 - 1)) / 2)
    assert latent_loss(target * 3, target, "cosine").item() == pytest.approx(0.0, abs=1e-6)  # scale-free
    assert latent_loss(-target, target, "cosine").item() == pytest.approx(2.0)
    b = batch(jepa())
    losses = {kind: jepa(loss=kind).loss(b).loss.item() for kind in ("l2", "smooth_l1", "l1", "cosine")}
    assert len({round(v, 6) for v in losses.values()}) == 4


def test_cosine_ema_schedule():
    assert ema_momentum(1, 100, 0.99, 1.0, "cosine") == pytest.approx(0.99)
    assert ema_momentum(100, 100, 0.99, 1.0, "cosine") == pytest.approx(1.0)
    assert ema_momentum(50, 99, 0.99, 1.0, "cosine") == pytest.approx(0.995)  # halfway
    assert ema_momentum(10, 100, 0.99, 1.0, "cosine") < ema_momentum(10, 100, 0.99, 1.0, "linear")  # slow start


def test_per_step_collapse_monitors():
    out = jepa().loss(batch(jepa(), size=8))
    m = out.metrics
    assert {"pred_std", "target_std", "target_rankme", "context_tokens", "target_tokens"} <= set(m)
    assert 0 < m["pred_std"] < m["target_std"]  # a fresh predictor outputs ~0 (out-projection init 0.02)
    assert 1.0 <= m["target_rankme"] <= 16


def test_representation_api_and_probe_encoder():
    m = jepa()
    b = next(FakeImageTask().train_batches(5, torch.Generator().manual_seed(0)))
    rep = m.representation()
    tokens = rep.tokens(b)  # [B, N, D], target encoder, eval mode, no grad
    assert tokens.shape == (5, 16, 16) and not tokens.requires_grad
    torch.testing.assert_close(tokens, m.target(b.inputs))
    assert rep.pooled(b).shape == (5, 16) and rep.pooled(b, "mean_max").shape == (5, 32) and rep.pooled(b, "flatten").shape == (5, 256)
    torch.testing.assert_close(rep.pooled(b, "max"), tokens.amax(1))
    assert m.encoder.training  # restored
    context = jepa(probe_encoder="context")
    with torch.no_grad():
        for p in context.encoder.parameters():
            p.add_(torch.randn_like(p))
    context_tokens = context.representation().tokens(b)
    assert context.encoder.training  # restored after the call
    torch.testing.assert_close(context_tokens, context.encoder.eval()(b.inputs))
    assert not torch.allclose(context_tokens, context.target(b.inputs))  # the (perturbed) context encoder, not the target


def test_reg_tokens_are_in_every_context_and_never_a_target():
    from test_tokenizers import TABLE

    from baselines.ssl.encoder import EncoderConfig, build_token_encoder
    from baselines.ssl.token_masks import SubsetsMaskConfig

    torch.manual_seed(0)
    enc = build_token_encoder(EncoderConfig(name="token_encoder", tokenizer={"name": "features"}, d_model=8, n_heads=2,
                                            n_layers=1, n_reg=2), TABLE)
    cfg = JEPAConfig(name="jepa", predictor=ConcatPredictorConfig(d_model=8, n_layers=1, n_heads=2),
                     mask=SubsetsMaskConfig(n_targets=2, context_share=(0.5, 0.5), target_share=(0.25, 0.25)))
    m = METHODS.get("jepa").build(cfg, enc, TABLE)
    x = torch.tensor([[0.5, 2.0, -1.0, 4.0]] * 6)
    b = m.collate(type(TABLE.eval_splits()["train"])(x, torch.zeros(6, dtype=torch.long)), torch.Generator().manual_seed(0))
    assert m.encoder.layout.n_tokens == 4 and int(b.masks.targets.max()) < 4 and int(b.masks.context.max()) < 4
    assert m.target_tokens(x, b.layout, b.masks.targets).shape == (6, 2, 1, 8)  # gathered from the 4 feature tokens
    z = m.encoder(x, b.layout, keep=b.masks.context)
    assert z.shape == (6, 2, 8)  # the predictor gets the context tokens only: the [REG] outputs are dropped
    assert m.representation().tokens(b).shape == (6, 4, 8)  # ... and so does a probe
    m.loss(b).loss.backward()
    assert m.encoder.reg.grad is not None and m.encoder.reg.grad.abs().sum() > 0  # [REG] is trained through the context


def test_a_fresh_method_loaded_from_the_module_state_dict_probes_the_same():
    """Probing as its own stage: build the method again, load the pre-training run's `method.module` state dict
    (what the loop saves as model.pt), and the representation is the trained one."""
    trained = jepa()
    opt = build_optimizer(trained.module, OptimizerConfig(lr=1e-2))
    for seed in range(3):
        trained.loss(batch(trained, seed=seed)).loss.backward()
        opt.step()
        opt.zero_grad()
        trained.after_step(seed + 1, 3)
    fresh = jepa()
    b = next(FakeImageTask().train_batches(6, torch.Generator().manual_seed(5)))
    assert not torch.allclose(fresh.representation().tokens(b), trained.representation().tokens(b))
    fresh.module.load_state_dict({k: v.clone() for k, v in trained.module.state_dict().items()})
    for encoder in ("target", "context"):
        a, z = jepa(probe_encoder=encoder), jepa(probe_encoder=encoder)
        a.module.load_state_dict(trained.module.state_dict())
        z.module.load_state_dict(fresh.module.state_dict())
        torch.testing.assert_close(a.representation().pooled(b), z.representation().pooled(b))
    torch.testing.assert_close(fresh.representation().tokens(b), trained.representation().tokens(b))
