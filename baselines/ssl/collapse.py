"""Collapse monitors of a representation, at evaluation (pooled features of a split) and at every training
step (the tokens of one batch).

    collapse_stats(z)   std_mean / std_min: per-dimension std of the l2-normalized embeddings, mean and minimum
                        over dimensions (a healthy D-dim embedding sits near 1/sqrt(D); complete collapse -> 0,
                        a dead dimension -> std_min 0); eff_rank: RankMe (Garrido et al. 2023), exp of the
                        entropy of the normalized singular values of the (uncentered) embeddings, between 1 and
                        min(N, D); eff_rank_centered: the same after subtracting the mean embedding.  Mean-pooled
                        ViT features share a large offset (measured: mean norm 6.7 vs 0.06 spread at init),
                        which makes std_mean ~ 0 and eff_rank ~ 1 even when a probe reads them well; the
                        centered rank tells dimensional collapse of the variation apart from that shared offset.
    content_share(t)    tokens t [S, N, D] of S samples at the same N positions: the share of the tokens'
                        variance that is NOT explained by position, mean over positions of the across-sample
                        variance / the variance over all (sample, position) pairs.  ~0: every sample's token at a
                        position is the same vector, the tokens encode where they are and nothing of the input
                        (a JEPA whose targets are predictable from positions alone); 1: position explains nothing.
    token_std(t)        t [..., D] -> per-dimension std over all leading entries, mean over dimensions (Point-JEPA's
                        train_pred_std / train_target_std: > 0.01 / > 0.1 there when healthy)
    rankme(z)           the RankMe of z [N, D]
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

EPS = 1e-12


def rankme(z: torch.Tensor) -> float:
    """exp(entropy of the normalized singular values of z [N, D])."""
    singular = torch.linalg.svdvals(z)  # [min(N, D)]
    p = singular / (singular.sum() + EPS) + EPS
    return torch.exp(-(p * p.log()).sum()).item()


def collapse_stats(z) -> dict[str, float]:
    """z: [N, D] embeddings -> {"std_mean", "std_min", "eff_rank", "eff_rank_centered"} (module docstring)."""
    z = torch.as_tensor(z).detach().cpu().to(torch.float64)
    if z.dim() != 2:
        raise ValueError(f"features must be [N, D], got shape {tuple(z.shape)}")
    if len(z) < 2:
        raise ValueError(f"collapse statistics need at least 2 embeddings, got {len(z)}")
    std = F.normalize(z, dim=1, eps=EPS).std(dim=0)  # [D]
    return {
        "std_mean": std.mean().item(),
        "std_min": std.min().item(),
        "eff_rank": rankme(z),
        "eff_rank_centered": rankme(z - z.mean(dim=0)),
    }


def content_share(tokens: torch.Tensor) -> float:
    """tokens [S, N, D] -> within-position variance / total variance (module docstring)."""
    t = tokens.detach().to(torch.float64)
    within = t.var(dim=0, unbiased=False).sum(dim=-1).mean()  # mean over positions of the across-sample variance
    total = t.reshape(-1, t.shape[-1]).var(dim=0, unbiased=False).sum()
    return (within / total.clamp_min(EPS)).item()


@torch.no_grad()
def token_std(t: torch.Tensor) -> float:
    """t [..., D] -> mean over dimensions of the std over every leading entry."""
    return t.detach().reshape(-1, t.shape[-1]).float().std(dim=0).mean().item()


@torch.no_grad()
def batch_rankme(t: torch.Tensor) -> float:
    """RankMe of the rows of t [..., D] (the tokens of one batch)."""
    return rankme(t.detach().reshape(-1, t.shape[-1]).float())
