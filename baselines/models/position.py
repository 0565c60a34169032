"""Position encodings for the transformer, one registered class per variant.

Every variant is a `PositionEncoding` module with three hooks; the transformer calls all three and
each variant overrides only the ones it needs (the defaults add nothing):

    embed(positions)                     -> [T, d_model] added to token embeddings, or None
    rotate(q, k, positions, layer)       -> (q, k), applied before the attention logits
    logit_bias(q, k, positions, layer)   -> additive bias broadcastable to [B, H, T, T], or None

q, k: [B, H, T, hd]; positions: [T] long (explicit, so tests can shift them).  The bias is added to the
already scaled logits q.k / sqrt(hd) (the convention of F.scaled_dot_product_attention's float mask);
the causal mask is added by the transformer, not here.  `layer` selects per-layer parameters.

Adding a variant = one subclass + one `@POSITIONS.register(...)` builder.  Hard-ALiBi, for example
(half the heads see only the last h tokens, h = 1..H/2, the other heads get no position signal; the
registered version is `HardAlibi` below):

    class HardAlibi(PositionEncoding):
        def __init__(self, cfg: PositionConfig) -> None:
            super().__init__()
            h = torch.zeros(cfg.n_heads)                        # 0 = no position signal
            h[: cfg.n_heads // 2] = torch.arange(1, cfg.n_heads // 2 + 1)
            self.register_buffer("window", h, persistent=False)  # [H]

        def logit_bias(self, q, k, positions, layer):
            dist = positions[:, None] - positions[None, :]       # [T, T]  i - j
            w = self.window[:, None, None]                       # [H, 1, 1]
            blocked = (w > 0) & ((dist < 0) | (dist >= w))      # [H, T, T]
            return torch.zeros_like(blocked, dtype=q.dtype).masked_fill(blocked, float("-inf"))

    @POSITIONS.register("hard_alibi", PositionConfig)
    def _build_hard_alibi(cfg: PositionConfig) -> PositionEncoding:
        return HardAlibi(cfg)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from pydantic import Field
from torch import nn

from harness.registry import ComponentConfig, Registry


class PositionConfig(ComponentConfig):
    """Shared config of every variant; the transformer fills it from its own config."""

    d_model: int = Field(ge=1)
    n_heads: int = Field(ge=1)
    n_layers: int = Field(ge=1)
    max_len: int = Field(ge=1)  # longest sequence (abs embedding table size)
    rel_clip: int = Field(default=16, ge=1)  # relative distances are clipped to [-rel_clip, rel_clip]
    rope_base: float = Field(default=10000.0, gt=1.0)


class PositionEncoding(nn.Module):
    """Base class: no position information at all (NoPE).  Subclasses override one or more hooks."""

    def embed(self, positions: torch.Tensor) -> torch.Tensor | None:
        return None

    def rotate(
        self, q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor, layer: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return q, k

    def logit_bias(
        self, q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor, layer: int
    ) -> torch.Tensor | None:
        return None


PositionBuilder = Callable[[PositionConfig], PositionEncoding]
POSITIONS: Registry[PositionBuilder] = Registry("position embedding")


def build_position(cfg: PositionConfig) -> PositionEncoding:
    return POSITIONS.get(cfg.name).build(cfg)


# ----------------------------------------------------------------------------------------------
# absolute


class AbsolutePosition(PositionEncoding):
    """Learned absolute position embedding added to the token embeddings."""

    def __init__(self, cfg: PositionConfig) -> None:
        super().__init__()
        self.table = nn.Embedding(cfg.max_len, cfg.d_model)

    def embed(self, positions: torch.Tensor) -> torch.Tensor:
        return self.table(positions)  # [T, d_model]


# ----------------------------------------------------------------------------------------------
# relative (Shaw et al. 2018 on keys; Huang et al. 2020 on keys and queries)


def clipped_distance_index(positions: torch.Tensor, clip: int) -> torch.Tensor:
    """[T, T] long index into a table of 2*clip+1 rows: clip(j - i, -clip, clip) + clip."""
    dist = positions[None, :] - positions[:, None]  # [T, T]  (i, j) -> j - i
    return dist.clamp(-clip, clip) + clip


class RelativeKeys(PositionEncoding):
    """Shaw et al.: logit_ij += q_i . a^K_{clip(j-i)} / sqrt(hd); one table per layer, shared by heads."""

    def __init__(self, cfg: PositionConfig) -> None:
        super().__init__()
        self.clip = cfg.rel_clip
        head_dim = cfg.d_model // cfg.n_heads
        self.scale = 1.0 / math.sqrt(head_dim)
        self.keys = nn.ParameterList(
            nn.Parameter(0.02 * torch.randn(2 * cfg.rel_clip + 1, head_dim)) for _ in range(cfg.n_layers)
        )  # n_layers x [2*clip+1, hd]

    def logit_bias(self, q, k, positions, layer):
        a_k = self.keys[layer][clipped_distance_index(positions, self.clip)]  # [T, T, hd]
        return self.scale * torch.einsum("bhid,ijd->bhij", q, a_k)  # [B, H, T, T]


class RelativeKeysQueries(RelativeKeys):
    """Huang et al. 2020: logit_ij += (q_i . a^K_{clip(j-i)} + k_j . a^Q_{clip(j-i)}) / sqrt(hd)."""

    def __init__(self, cfg: PositionConfig) -> None:
        super().__init__(cfg)
        head_dim = cfg.d_model // cfg.n_heads
        self.queries = nn.ParameterList(
            nn.Parameter(0.02 * torch.randn(2 * cfg.rel_clip + 1, head_dim)) for _ in range(cfg.n_layers)
        )  # n_layers x [2*clip+1, hd]

    def logit_bias(self, q, k, positions, layer):
        index = clipped_distance_index(positions, self.clip)  # [T, T]
        a_k, a_q = self.keys[layer][index], self.queries[layer][index]  # [T, T, hd] each
        on_keys = torch.einsum("bhid,ijd->bhij", q, a_k)  # q_i . a^K_ij   [B, H, T, T]
        on_queries = torch.einsum("bhjd,ijd->bhij", k, a_q)  # k_j . a^Q_ij   [B, H, T, T]
        return self.scale * (on_keys + on_queries)


# ----------------------------------------------------------------------------------------------
# rotary


class Rotary(PositionEncoding):
    """RoPE (Su et al.), half-split convention: rotate pairs (x_m, x_{m+hd/2}) by angle pos * base^(-2m/hd)."""

    def __init__(self, cfg: PositionConfig) -> None:
        super().__init__()
        head_dim = cfg.d_model // cfg.n_heads
        if head_dim % 2:
            raise ValueError(f"rope needs an even head dim, got d_model/n_heads = {head_dim}")
        inv_freq = cfg.rope_base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        self.register_buffer("inv_freq", inv_freq, persistent=False)  # [hd/2]

    def rotate(self, q, k, positions, layer):
        angles = positions.to(self.inv_freq.dtype)[:, None] * self.inv_freq[None, :]  # [T, hd/2]
        cos, sin = angles.cos(), angles.sin()
        return apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: [B, H, T, hd]; cos, sin: [T, hd/2]."""
    x1, x2 = x.chunk(2, dim=-1)  # [B, H, T, hd/2] each
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


# ----------------------------------------------------------------------------------------------
# ALiBi


def alibi_slopes(n_heads: int) -> torch.Tensor:
    """The geometric head slopes of Press et al. (2^(-8/n), 2^(-16/n), ...), interpolated for n not a power of 2."""

    def power_of_2(n: int) -> list[float]:
        start = 2 ** (-8 / n)
        return [start ** (i + 1) for i in range(n)]

    if math.log2(n_heads).is_integer():
        return torch.tensor(power_of_2(n_heads))
    closest = 2 ** math.floor(math.log2(n_heads))
    extra = power_of_2(2 * closest)[0::2][: n_heads - closest]
    return torch.tensor(power_of_2(closest) + extra)


class Alibi(PositionEncoding):
    """ALiBi: logit_ij += -slope_h * |i - j|.  Under a causal mask this equals the usual -slope_h * (i - j)."""

    def __init__(self, cfg: PositionConfig) -> None:
        super().__init__()
        self.register_buffer("slopes", alibi_slopes(cfg.n_heads), persistent=False)  # [H]

    def logit_bias(self, q, k, positions, layer):
        dist = (positions[:, None] - positions[None, :]).abs().to(q.dtype)  # [T, T]
        return -self.slopes.to(q.dtype)[:, None, None] * dist  # [H, T, T]


# ----------------------------------------------------------------------------------------------
# Hard-ALiBi (Jelassi et al. 2024, "Repeat After Me")


def hard_alibi_windows(n_heads: int) -> torch.Tensor:
    """[H] long: window h = 1..H//2 for the first H//2 heads, 0 (= no window, NoPE) for the others."""
    window = torch.zeros(n_heads, dtype=torch.long)
    window[: n_heads // 2] = torch.arange(1, n_heads // 2 + 1)
    return window


class HardAlibi(PositionEncoding):
    """Hard-ALiBi: head h with window w_h > 0 sees only the last w_h tokens, the other heads get no position
    signal.  With dist = i - j (query i, key j):

        bias_hij = 0     if w_h == 0 (NoPE head) or 0 <= dist < w_h   (i.e. i - w_h < j <= i)
                 = -inf  otherwise

    so a windowed head is causal by itself (keys j > i are blocked even without the transformer's causal
    mask) and a window of 1 attends only to the current token.  Windows: `hard_alibi_windows` (H//2
    windowed heads with w = 1..H//2; with one head the model is plain NoPE).  The bias depends only on
    i - j, so the encoding is shift-invariant.
    """

    def __init__(self, cfg: PositionConfig) -> None:
        super().__init__()
        self.register_buffer("window", hard_alibi_windows(cfg.n_heads), persistent=False)  # [H]

    def logit_bias(self, q, k, positions, layer):
        dist = positions[:, None] - positions[None, :]  # [T, T]  i - j
        w = self.window[:, None, None]  # [H, 1, 1]
        blocked = (w > 0) & ((dist < 0) | (dist >= w))  # [H, T, T]
        bias = torch.zeros(blocked.shape, dtype=q.dtype, device=q.device)
        return bias.masked_fill(blocked, float("-inf"))  # [H, T, T]


# ----------------------------------------------------------------------------------------------
# registration


POSITIONS.register("none", PositionConfig)(lambda cfg: PositionEncoding())
for _name, _variant in {
    "abs": AbsolutePosition,
    "rel_k": RelativeKeys,
    "rel_kq": RelativeKeysQueries,
    "rope": Rotary,
    "alibi": Alibi,
    "hard_alibi": HardAlibi,
}.items():
    POSITIONS.register(_name, PositionConfig)(_variant)
