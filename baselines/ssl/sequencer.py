"""Point-JEPA's sequencer: an order of the tokens by their coordinates, and masks of contiguous runs in it.

    order_tokens(coords [B, N, A], order, rng) -> perm [B, N]: perm[b, s] is the token at sequence position s
        greedy        nearest-neighbour walk from the token of minimum coordinate sum (Point-JEPA's default,
                      `iterative_nearest_min_start`): each next token the nearest one not yet visited
        greedy_index  the same walk from token 0 (Point-JEPA's "index start"; token 0 is FPS's first center)
        morton        z-order: coordinates scaled to [0, 1] per sample, 10 bits per axis, bits interleaved
        none          a uniformly random permutation per sample (no ordering: "contiguous" runs are scattered)
    step_distance(coords, perm) -> [B]: mean distance between consecutive tokens of the order

Mask sampler `runs` (MASKS; Point-JEPA's masking after its sequencer): per batch, a target length
round(u N), u uniform in `target_share`, and a context share v uniform in `context_share`; per sample, the
order above, `n_targets` target blocks each a contiguous run of that length at a uniform start (the blocks
may overlap each other), then the context: a contiguous run of the sequence with the target positions
removed, of length round(v R), R the smallest number of non-target positions in the batch (so every row has
the same count).  Indices are returned as token indices (sorted), so the encoder sees tokens in their own
order; only the choice of tokens follows the sequencer.  Point-JEPA shares the positions across the batch;
here they are drawn per sample.  Stats: mask/step_distance (mean over the batch of step_distance).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
import torch
from pydantic import Field, model_validator

from baselines.ssl.layout import Layout
from baselines.ssl.masks import MASKS, Masks, numpy_rng
from baselines.tasks.ranges import check_interval
from harness.registry import ComponentConfig

Order = Literal["greedy", "greedy_index", "morton", "none"]
MORTON_BITS = 10


def greedy_order(coords: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
    """coords [B, N, A], start [B] long -> perm [B, N]: the nearest-neighbour walk from `start`."""
    B, N, _ = coords.shape
    dist = torch.cdist(coords, coords, compute_mode="donot_use_mm_for_euclid_dist")  # [B, N, N]
    rows = torch.arange(B)
    perm = torch.empty(B, N, dtype=torch.long)
    visited = torch.zeros(B, N, dtype=torch.bool)
    current = start
    for s in range(N):
        perm[:, s] = current
        visited[rows, current] = True
        if s + 1 < N:
            current = dist[rows, current].masked_fill(visited, float("inf")).argmin(dim=1)  # [B]
    return perm


def morton_codes(coords: torch.Tensor) -> torch.Tensor:
    """coords [B, N, A] -> z-order codes [B, N] (int64), MORTON_BITS bits per axis after per-sample scaling."""
    lo, hi = coords.amin(dim=1, keepdim=True), coords.amax(dim=1, keepdim=True)  # [B, 1, A]
    q = ((coords - lo) / (hi - lo).clamp_min(1e-12) * (2**MORTON_BITS - 1)).round().long()  # [B, N, A]
    A = coords.shape[-1]
    code = torch.zeros(q.shape[:2], dtype=torch.long)
    for bit in range(MORTON_BITS):
        for a in range(A):
            code |= ((q[..., a] >> bit) & 1) << (bit * A + a)
    return code


def order_tokens(coords: torch.Tensor, order: Order, rng: np.random.Generator) -> torch.Tensor:
    """coords [B, N, A] -> perm [B, N] (module docstring).  Only `none` draws from rng."""
    coords = coords.detach().cpu().float()
    B, N, _ = coords.shape
    if order == "greedy":
        return greedy_order(coords, coords.sum(dim=-1).argmin(dim=1))
    if order == "greedy_index":
        return greedy_order(coords, torch.zeros(B, dtype=torch.long))
    if order == "morton":
        return morton_codes(coords).argsort(dim=1, stable=True)
    return torch.from_numpy(np.argsort(rng.random((B, N)), axis=1)).long()


def step_distance(coords: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """coords [B, N, A], perm [B, N] -> [B]: mean distance between tokens perm[:, s] and perm[:, s + 1]."""
    seq = torch.gather(coords, 1, perm[..., None].expand(-1, -1, coords.shape[-1]))  # [B, N, A] in order
    return (seq[:, 1:] - seq[:, :-1]).norm(dim=-1).mean(dim=1)


class RunsMaskConfig(ComponentConfig):
    STATS: ClassVar[tuple[str, ...]] = ("mask/step_distance",)
    name: Literal["runs"] = "runs"
    order: Order = "greedy"
    n_targets: int = Field(default=4, ge=1)
    target_share: tuple[float, float] = (0.15, 0.2)  # of the N tokens, per target run (Point-JEPA)
    context_share: tuple[float, float] = (0.4, 0.75)  # of the non-target tokens, one run (Point-JEPA)

    @model_validator(mode="after")
    def _check(self) -> RunsMaskConfig:
        check_interval("target_share", self.target_share, 0, 1.0)
        check_interval("context_share", self.context_share, 0, 1.0)
        return self


class RunsSampler:
    overlap = False

    def __init__(self, cfg: RunsMaskConfig, layout: Layout) -> None:
        n = layout.n_tokens
        if round(cfg.target_share[1] * n) * cfg.n_targets >= n:
            raise ValueError(f"mask runs: {cfg.n_targets} targets of up to {cfg.target_share[1]:.0%} of the {n} tokens "
                             "may leave no context")
        self.cfg, self.n_tokens = cfg, n

    def __call__(self, layout: Layout, batch_size: int, generator: torch.Generator, progress: float) -> Masks:
        cfg, N = self.cfg, self.n_tokens
        rng = numpy_rng(generator)
        coords = layout.coords if layout.per_sample else layout.coords.expand(batch_size, -1, -1)  # [B, N, A]
        perm = order_tokens(coords, cfg.order, rng)  # [B, N]
        n_tgt = max(round(rng.uniform(*cfg.target_share) * N), 1)
        share = rng.uniform(*cfg.context_share)
        starts = rng.integers(0, N - n_tgt + 1, (batch_size, cfg.n_targets))  # [B, M]
        positions = starts[..., None] + np.arange(n_tgt)  # [B, M, Nt]: sequence positions of the targets
        hidden = np.zeros((batch_size, N), dtype=bool)
        np.put_along_axis(hidden, positions.reshape(batch_size, -1), True, axis=1)  # [B, N] by position
        rest = N - hidden.sum(axis=1)  # [B]: non-target positions per sample
        n_ctx = max(round(share * rest.min()), 1)
        first = rng.integers(0, rest - n_ctx + 1)  # [B]: the context run's start among the non-target positions
        free = np.argsort(hidden, axis=1, kind="stable")  # [B, N]: non-target positions first, in sequence order
        ctx_pos = free[np.arange(batch_size)[:, None], first[:, None] + np.arange(n_ctx)]  # [B, Nc]
        p = perm.numpy()
        context = np.sort(np.take_along_axis(p, ctx_pos, axis=1), axis=1)  # [B, Nc] token indices
        targets = np.sort(np.take_along_axis(p, positions.reshape(batch_size, -1), axis=1).reshape(positions.shape), axis=-1)
        stats = {"mask/step_distance": float(step_distance(coords.detach().cpu().float(), perm).mean())}
        return Masks(torch.from_numpy(context).long(), torch.from_numpy(targets).long(), stats)


MASKS.register("runs", RunsMaskConfig)(RunsSampler)
