"""The evaluations of the `act` method: closed-loop success with ACT's temporal ensembling, and the probe from
the policy's embedding to the future state.

    TemporalEnsemble   ACT's temporal ensembling (Zhao et al. 2023, sec. 3.3): the policy is queried at every
                       step; the action executed at step t is the weighted mean of every chunk's prediction for
                       t (the chunks predicted at t-k+1 .. t), weights w_i = exp(-m i) with i = 0 the OLDEST
                       prediction (ACT's code: exp(-k * arange(n)) over the predictions ordered oldest first).
    closed_loop        run the policy with ensembling from the task's fixed rollout starts for episode_steps
                       steps: success rate (the disk reached the goal at some step) and the mean final distance.
    future_r2          ridge regression (L2 chosen on a validation split of the fit split; baselines/ssl/probes.py
                       `linear` on a regression target) from features [S, D] to each column of targets [S, C],
                       fit on split "probe", scored on split "test": the mean R^2 over the columns.
"""

from __future__ import annotations

import math

import torch

from baselines.ssl.probes import Features, LinearProbeConfig, build_linear
from baselines.tasks.pushing import PushTask, rollout


class TemporalEnsemble:
    def __init__(self, chunk: int, decay: float) -> None:
        self.chunk, self.decay = chunk, decay
        self.chunks: list[tuple[int, torch.Tensor]] = []  # (step predicted at, chunk [B, k, A]), oldest first

    def add(self, t: int, chunk: torch.Tensor) -> None:
        """The chunk [B, k, A] predicted at step t (for steps t .. t+k-1)."""
        self.chunks = [(s, c) for s, c in self.chunks if t - s < self.chunk] + [(t, chunk)]

    def action(self, t: int) -> torch.Tensor:
        """The ensembled action for step t, [B, A]."""
        preds = [c[:, t - s] for s, c in self.chunks if 0 <= t - s < self.chunk]  # oldest first, each [B, A]
        if not preds:
            raise ValueError(f"no chunk predicts step {t}")
        w = torch.tensor([math.exp(-self.decay * i) for i in range(len(preds))], dtype=preds[0].dtype)  # [n]
        w = (w / w.sum()).to(preds[0].device)
        return torch.einsum("n,nba->ba", w, torch.stack(preds))  # [B, A]


@torch.no_grad()
def closed_loop(policy: torch.nn.Module, task: PushTask, decay: float) -> dict[str, float]:
    """Success rate and mean final disk-goal distance of `policy` (obs [B, E, F] -> (chunk [B, k, 2], _)) over the
    task's rollout starts, with temporal ensembling."""
    device = next(policy.parameters()).device
    ensemble = TemporalEnsemble(task.chunk, decay)

    def act(state: torch.Tensor, t: int) -> torch.Tensor:
        chunk, _ = policy(state.to(device, torch.float32))  # [R, k, 2]
        ensemble.add(t, chunk.cpu().double())
        return ensemble.action(t)  # [R, 2]

    states, _, success = rollout(task.world, task.rollout_starts, task.episode_steps, act)
    final = states[:, -1]  # [R, E, F]
    dist = (final[:, 1, :2] - final[:, 2, :2]).norm(dim=1)  # [R]
    return {"success": success.double().mean().item(), "final_dist": dist.mean().item()}


def future_r2(fit_x: torch.Tensor, fit_y: torch.Tensor, score_x: torch.Tensor, score_y: torch.Tensor,
              l2: list[float]) -> float:
    """fit_x [S, D], fit_y [S, C], score_x [S', D], score_y [S', C] -> mean R^2 over the C columns (module docstring)."""
    probe = build_linear(LinearProbeConfig(l2=l2))
    scores = [probe(Features(fit_x, fit_y[:, c]), Features(score_x, score_y[:, c]), 0).score for c in range(fit_y.shape[1])]
    return sum(scores) / len(scores)
