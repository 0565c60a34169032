"""ACT-style action chunking with a registered auxiliary objective: ACT (`aux: {name: none}`), ACT-JEPA
(`aux: {name: latent}`: the latents of the future observations through an EMA target encoder) and the
input-space control (`aux: {name: raw}`: the future states themselves); baselines/methods/act_objectives.py.

    loss = action_loss(policy(obs_t), a_t .. a_{t+k-1})  +  aux.weight * aux.loss      (ACT-JEPA: L1 + L1)

The model is `act_policy` (baselines/models/act.py), the task `push2d` (baselines/tasks/pushing.py).
evaluate() (baselines/methods/act_eval.py):
    action_l1                mean |predicted - expert| action over the held-out "test" windows' chunks
    success, final_dist      closed loop from the task's fixed starts, temporal ensembling (`ensemble_decay`)
    probe/future_r2          ridge R^2 from the policy's embedding of s_t (its context tokens, flattened) to the
                             agent and disk positions at t + probe_horizon, fit on "probe", scored on "test"
    probe/future_r2_disk     the same, the disk's two coordinates only
    probe/state_future_r2    the same ridge from the raw state s_t itself (the reference every embedding faces)
    eval/step                the step evaluated at
Per training step: action_loss, step and the objective's own metrics (latent: aux_loss, pred_std, target_std,
target_rankme, ema_momentum; raw: aux_loss, pred_std).
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from baselines.methods.act_eval import closed_loop, future_r2
from baselines.methods.act_objectives import AUX_OBJECTIVES, NoAuxConfig, build_objective
from baselines.models.act import ActPolicy, push_task
from baselines.ssl.registered import Registered
from baselines.ssl.targets import LatentLoss, latent_loss
from baselines.tasks.pushing import PushBatch, PushTask
from harness.components import METHODS, LossOutput, Task
from harness.registry import ComponentConfig


class ActConfig(ComponentConfig):
    aux: Registered(AUX_OBJECTIVES) = Field(default_factory=NoAuxConfig)
    action_loss: LatentLoss = "l1"  # ACT: L1 on the chunk
    ensemble_decay: float = Field(default=0.01, ge=0.0)  # m of w_i = exp(-m i) (ACT's default)
    probe_l2: list[float] = Field(default_factory=lambda: [1e-4, 1e-3, 1e-2, 1e-1, 1.0], min_length=1)
    eval_batch_size: int = Field(default=1024, ge=1)


class Act:
    def __init__(self, cfg: ActConfig, policy: ActPolicy, task: PushTask) -> None:
        self.cfg, self.task = cfg, task
        self.aux = build_objective(cfg.aux, policy, task.horizon)
        self.module = nn.ModuleDict({"policy": policy, "aux": self.aux.module})
        self.step = 0  # optimizer steps done (train/step, eval/step: figures over training)

    @property
    def policy(self) -> ActPolicy:
        return self.module["policy"]

    def collate(self, batch: PushBatch, generator: torch.Generator) -> PushBatch:
        return batch

    def loss(self, batch: PushBatch) -> LossOutput:
        actions, z = self.policy(batch.obs)  # [B, k, 2], [B, E, d]
        action_loss = latent_loss(actions, batch.actions, self.cfg.action_loss)
        aux_loss, metrics = self.aux.loss(self.policy, z, batch)
        metrics = {"action_loss": action_loss.item(), "step": float(self.step + 1), **metrics}
        return LossOutput(loss=action_loss + self.aux.weight * aux_loss, metrics=metrics)

    def after_step(self, step: int, total_steps: int) -> None:
        self.step = step
        self.aux.after_step(self.policy, step, total_steps)

    def state_dict(self) -> dict[str, float]:
        """Training state outside `module`, for resume checkpoints (harness.train.resume.Stateful)."""
        return {"step": self.step, **self.aux.state_dict()}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.step = int(state["step"])
        self.aux.load_state_dict(state)

    def _device(self) -> torch.device:
        return next(self.policy.parameters()).device

    @torch.no_grad()
    def _outputs(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(predicted chunks [S, k, 2], embeddings [S, E*d]) of an eval split, on CPU."""
        data, size = self.task.splits[split], self.cfg.eval_batch_size
        chunks, embeddings = [], []
        for start in range(0, len(data), size):
            actions, z = self.policy(data.obs[start:start + size].to(self._device()))  # [b, k, 2], [b, E, d]
            chunks.append(actions.cpu())
            embeddings.append(z.flatten(1).cpu())  # [b, E*d]
        return torch.cat(chunks), torch.cat(embeddings)

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        was_training = self.module.training
        self.module.eval()
        try:
            _, fit_x = self._outputs("probe")
            chunks, score_x = self._outputs("test")
            targets, splits, l2 = self.task.future_targets, self.task.splits, self.cfg.probe_l2
            metrics = {
                "action_l1": (chunks - splits["test"].actions).abs().mean().item(),
                **closed_loop(self.policy, self.task, self.cfg.ensemble_decay),
                "items/success": float(len(self.task.rollout_starts)),  # success is a proportion of the rollout starts
                "probe/future_r2": future_r2(fit_x, targets["probe"], score_x, targets["test"], l2),
                "probe/future_r2_disk": future_r2(fit_x, targets["probe"][:, 2:], score_x, targets["test"][:, 2:], l2),
                "probe/state_future_r2": future_r2(splits["probe"].obs.flatten(1), targets["probe"],
                                                   splits["test"].obs.flatten(1), targets["test"], l2),
                "eval/step": float(self.step),
            }
        finally:
            self.module.train(was_training)
        return metrics


EVAL_METRICS = ("action_l1", "success", "items/success", "final_dist", "probe/future_r2", "probe/future_r2_disk", "probe/state_future_r2",
                "eval/step")


def metric_names(cfg: ActConfig, task: Task) -> list[str]:
    return [*EVAL_METRICS, *(f"train/{m}" for m in ("action_loss", "step", *cfg.aux.step_metrics))]


@METHODS.register("act", ActConfig, metrics=metric_names)
def build(cfg: ActConfig, model: nn.Module, task: Task) -> Act:
    if not isinstance(model, ActPolicy):
        raise TypeError(f"method act needs the act_policy model; {type(model).__name__} is not one")
    return Act(cfg, model, push_task(task, "method act"))
