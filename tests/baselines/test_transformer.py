import pytest
import torch
from conftest import FakeTokenTask
from pydantic import ValidationError

import baselines  # noqa: F401
from baselines.models.transformer import Transformer, TransformerConfig
from harness.components import MODELS

torch.set_num_threads(1)

ALL = ["abs", "rel_k", "rel_kq", "rope", "alibi", "none"]
SHIFT_INVARIANT = ["rel_k", "rel_kq", "rope", "alibi", "none"]


def FakeTask():
    return FakeTokenTask(vocab_size=11, max_len=40)


def model(pos_emb: str, **kw) -> Transformer:
    torch.manual_seed(0)
    cfg = TransformerConfig(name="transformer", d_model=32, n_layers=2, n_heads=4, pos_emb=pos_emb, rel_clip=6, **kw)
    return MODELS.get("transformer").build(cfg, FakeTask()).eval()


@pytest.mark.parametrize("pos_emb", ALL)
@pytest.mark.parametrize("causal", [False, True])
def test_shapes(pos_emb, causal):
    x = torch.randint(0, 11, (3, 12))
    assert model(pos_emb, causal=causal)(x).shape == (3, 12, 11)


def test_defaults():
    cfg = TransformerConfig(name="transformer")
    assert (cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.d_ff, cfg.pos_emb, cfg.rel_clip, cfg.causal) == (
        64, 2, 4, None, "abs", 16, False
    )
    m = Transformer(cfg, vocab_size=11, max_len=20)
    assert m.blocks[0].mlp.fc.out_features == 256


@pytest.mark.parametrize("pos_emb", ALL)
def test_causal_model_ignores_the_future(pos_emb):
    m = model(pos_emb, causal=True)
    x = torch.randint(0, 11, (2, 10))
    y = x.clone()
    y[:, 7] = (y[:, 7] + 1) % 11
    with torch.no_grad():
        a, b = m(x), m(y)
    torch.testing.assert_close(a[:, :7], b[:, :7])
    assert not torch.allclose(a[:, 7:], b[:, 7:])


def test_nope_learns_positions_only_from_the_causal_mask():
    """`none` adds no position signal, so the only one a causal NoPE model has is the mask: in `a b b b b`,
    position t averages over {a, t x b}, a different mixture at every t (a counter of positions).  Without the
    mask every `b` sees the same multiset, and the outputs at the b's are identical."""
    x = torch.tensor([[3] + [5] * 8])  # [1, 9]
    with torch.no_grad():
        causal, bidirectional = model("none", causal=True)(x)[0, 1:], model("none", causal=False)(x)[0, 1:]  # [8, V]
    torch.testing.assert_close(bidirectional, bidirectional[:1].expand_as(bidirectional))
    gaps = (causal[1:] - causal[:-1]).abs().amax(-1)  # [7]: the logits change from every position to the next
    assert bool((gaps > 1e-4).all()), gaps


def test_bidirectional_model_sees_the_future():
    m = model("rel_k", causal=False)
    x = torch.randint(0, 11, (2, 10))
    y = x.clone()
    y[:, 7] = (y[:, 7] + 1) % 11
    with torch.no_grad():
        assert not torch.allclose(m(x)[:, :7], m(y)[:, :7])


@pytest.mark.parametrize("pos_emb", SHIFT_INVARIANT)
@pytest.mark.parametrize("causal", [False, True])
def test_relative_models_are_shift_invariant(pos_emb, causal):
    m = model(pos_emb, causal=causal)
    x = torch.randint(0, 11, (2, 9))
    with torch.no_grad():
        base = m(x, torch.arange(9))
        shifted = m(x, torch.arange(9) + 13)
    torch.testing.assert_close(base, shifted, atol=1e-4, rtol=1e-4)


def test_abs_model_is_not_shift_invariant():
    m = model("abs")
    x = torch.randint(0, 11, (2, 9))
    with torch.no_grad():
        assert not torch.allclose(m(x, torch.arange(9)), m(x, torch.arange(9) + 13), atol=1e-4)


def test_unknown_pos_emb_did_you_mean():
    with pytest.raises(ValidationError, match="did you mean 'rel_kq'"):
        TransformerConfig(name="transformer", pos_emb="rel_kqq")
    with pytest.raises(ValueError, match="unknown position embedding"):
        TransformerConfig(name="transformer", pos_emb="absolute")


def test_config_is_strict():
    with pytest.raises(ValidationError):
        TransformerConfig(name="transformer", d_modle=32)
    with pytest.raises(ValidationError, match="divide"):
        TransformerConfig(name="transformer", d_model=30, n_heads=4)
    with pytest.raises(ValidationError):
        TransformerConfig(name="transformer", n_layers=0)


def test_gradients_reach_position_parameters():
    m = model("rel_kq").train()
    m(torch.randint(0, 11, (2, 8))).sum().backward()
    assert all(p.grad is not None for p in m.pos.parameters())
