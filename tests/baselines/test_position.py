import pytest
import torch

import baselines  # noqa: F401
from baselines.models.position import POSITIONS, PositionConfig, PositionEncoding, alibi_slopes, build_position

torch.set_num_threads(1)

RELATIVE = ["rel_k", "rel_kq", "rope", "alibi", "none"]


def make(name: str, **kw) -> PositionEncoding:
    cfg = dict(name=name, d_model=32, n_heads=4, n_layers=2, max_len=64, rel_clip=5)
    cfg.update(kw)
    return build_position(PositionConfig(**cfg))


def scores(pos: PositionEncoding, q, k, positions, layer=0):
    """The attention logits the transformer would compute from q, k under this encoding."""
    q, k = pos.rotate(q, k, positions, layer)
    logits = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5
    bias = pos.logit_bias(q, k, positions, layer)
    return logits if bias is None else logits + bias


def test_registered_variants():
    assert set(POSITIONS.names()) >= {"abs", "rel_k", "rel_kq", "rope", "alibi", "none"}


@pytest.mark.parametrize("name", RELATIVE)
def test_relative_logits_are_shift_invariant(name):
    torch.manual_seed(0)
    pos = make(name)
    q, k = torch.randn(2, 4, 9, 8), torch.randn(2, 4, 9, 8)
    base = scores(pos, q, k, torch.arange(9))
    shifted = scores(pos, q, k, torch.arange(9) + 17)
    torch.testing.assert_close(base, shifted, atol=1e-4, rtol=1e-4)


def test_abs_is_an_input_embedding_that_depends_on_position():
    pos = make("abs")
    a, b = pos.embed(torch.arange(5)), pos.embed(torch.arange(5) + 3)
    assert a.shape == (5, 32)
    assert not torch.allclose(a, b)
    for name in RELATIVE:
        assert make(name).embed(torch.arange(5)) is None


def test_rel_k_bias_is_clipped_and_matches_definition():
    torch.manual_seed(0)
    pos = make("rel_k", rel_clip=2)
    q, k = torch.randn(1, 4, 6, 8), torch.randn(1, 4, 6, 8)
    bias = pos.logit_bias(q, k, torch.arange(6), layer=1)  # [1, 4, 6, 6]
    table = pos.keys[1]
    for i, j in [(0, 5), (5, 0), (2, 3), (3, 3)]:
        d = max(-2, min(2, j - i))
        expected = (q[0, :, i] @ table[d + 2]) / 8**0.5
        torch.testing.assert_close(bias[0, :, i, j], expected)
    # beyond the clip distance every key gets the same relative vector
    torch.testing.assert_close(bias[..., 0, 3], bias[..., 0, 5])


def test_rel_kq_adds_the_key_term():
    torch.manual_seed(0)
    pos = make("rel_kq", rel_clip=3)
    q, k = torch.randn(1, 4, 5, 8), torch.randn(1, 4, 5, 8)
    bias = pos.logit_bias(q, k, torch.arange(5), layer=0)
    i, j = 1, 3
    expected = (q[0, :, i] @ pos.keys[0][j - i + 3] + k[0, :, j] @ pos.queries[0][j - i + 3]) / 8**0.5
    torch.testing.assert_close(bias[0, :, i, j], expected)


def test_rope_preserves_norms_and_is_identity_at_zero():
    torch.manual_seed(0)
    pos = make("rope")
    q, k = torch.randn(2, 4, 7, 8), torch.randn(2, 4, 7, 8)
    rq, rk = pos.rotate(q, k, torch.arange(7) + 3, layer=0)
    torch.testing.assert_close(rq.norm(dim=-1), q.norm(dim=-1))
    torch.testing.assert_close(rk.norm(dim=-1), k.norm(dim=-1))
    zq, _ = pos.rotate(q[:, :, :1], k[:, :, :1], torch.zeros(1, dtype=torch.long), layer=0)
    torch.testing.assert_close(zq, q[:, :, :1])


def test_rope_needs_even_head_dim():
    with pytest.raises(ValueError, match="even"):
        make("rope", d_model=12, n_heads=4)


def test_alibi_slopes_and_bias():
    torch.testing.assert_close(alibi_slopes(4), torch.tensor([2**-2, 2**-4, 2**-6, 2**-8]))
    assert alibi_slopes(6).shape == (6,)
    pos = make("alibi")
    q = torch.zeros(1, 4, 4, 8)
    bias = pos.logit_bias(q, q, torch.arange(4), layer=0)  # [4, 4, 4]
    assert bias[0, 0, 3].item() == pytest.approx(-3 * 2**-2)
    assert bias[0, 3, 0].item() == pytest.approx(-3 * 2**-2)  # bidirectional: -slope * |i - j|
    assert torch.all(bias.diagonal(dim1=-2, dim2=-1) == 0)


def test_unknown_position_name_suggests():
    with pytest.raises(LookupError, match="did you mean 'rope'"):
        build_position(PositionConfig(name="ropee", d_model=8, n_heads=2, n_layers=1, max_len=4))


# ----------------------------------------------------------------------------------------------
# hard_alibi


def test_hard_alibi_windows_attend_exactly_the_last_h_tokens():
    from baselines.models.position import hard_alibi_windows

    assert hard_alibi_windows(4).tolist() == [1, 2, 0, 0]
    assert hard_alibi_windows(8).tolist() == [1, 2, 3, 4, 0, 0, 0, 0]
    pos = make("hard_alibi", n_heads=8, d_model=64)
    T = 10
    q = torch.randn(1, 8, T, 8)
    bias = pos.logit_bias(q, q, torch.arange(T) + 5, layer=0)  # [8, T, T]
    assert bias.shape == (8, T, T)
    for head, h in enumerate([1, 2, 3, 4]):
        for i in range(T):
            allowed = {j for j in range(T) if torch.isfinite(bias[head, i, j])}
            assert allowed == set(range(max(0, i - h + 1), i + 1))  # i - h < j <= i
            assert torch.all(bias[head, i, sorted(allowed)] == 0)
    assert torch.all(bias[4:] == 0)  # NoPE heads: no position signal at all
    # attention of a window-h head, under the transformer's causal mask: exactly the last h keys
    att = (scores(pos, q, torch.randn(1, 8, T, 8), torch.arange(T)) + torch.full((T, T), float("-inf")).triu(1)).softmax(-1)
    assert torch.all((att[0, 1, 5] > 0) == torch.tensor([j in (4, 5) for j in range(T)]))
    assert (att[0, 0].diagonal() == 1).all()


def test_hard_alibi_is_shift_invariant_and_nope_heads_ignore_position():
    torch.manual_seed(0)
    pos = make("hard_alibi")
    q, k = torch.randn(2, 4, 9, 8), torch.randn(2, 4, 9, 8)
    base = scores(pos, q, k, torch.arange(9))
    torch.testing.assert_close(base, scores(pos, q, k, torch.arange(9) + 17))
    nope = scores(make("none"), q, k, torch.arange(9))
    torch.testing.assert_close(base[:, 2:], nope[:, 2:])
    assert pos.embed(torch.arange(5)) is None


def test_causal_transformer_with_hard_alibi_ignores_the_future():
    from baselines.models.transformer import Transformer, TransformerConfig

    torch.manual_seed(0)
    cfg = TransformerConfig(name="transformer", d_model=32, n_layers=2, n_heads=4, pos_emb="hard_alibi", causal=True)
    m = Transformer(cfg, vocab_size=11, max_len=40).eval()
    x = torch.randint(0, 11, (2, 12))
    y = x.clone()
    y[:, 8:] = (y[:, 8:] + 1) % 11
    with torch.no_grad():
        a, b = m(x), m(y)
    assert torch.isfinite(a).all()
    torch.testing.assert_close(a[:, :8], b[:, :8])
    assert not torch.allclose(a[:, 8:], b[:, 8:])
