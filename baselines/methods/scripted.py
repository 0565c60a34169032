"""A scripted policy on the push2d task, evaluated exactly like a learned one: the reference arms of
policy_jepa (harness README, "Reports and claims").

    policy: expert   the task's scripted expert (baselines/tasks/pushing.py: expert_action), the demonstrator
                     itself: the ceiling of closed-loop success
    policy: still    zero action at every step: the floor (a disk that starts on its goal counts, as for any policy)

Nothing is trained (run it for one step).  evaluate(): closed-loop success and final distance from the task's
rollout starts (the same starts and success rule as the act method's), items/success (the starts: success is a
proportion of them), action_l1 of the policy's own action against the demonstrated first action of each test
window, and probe/future_r2 with the raw state as the embedding (what the state alone says of the future: the
ceiling of the act method's world-model probe)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from baselines.methods.act_eval import future_r2
from baselines.methods.raw import Untrained
from baselines.tasks.pushing import PushTask, expert_action, rollout
from harness.components import METHODS, Task
from harness.registry import ComponentConfig


class ScriptedConfig(ComponentConfig):
    policy: Literal["expert", "still"] = "expert"
    probe_l2: list[float] = [1e-4, 1e-3, 1e-2, 1e-1, 1.0]


class Scripted(Untrained):
    def __init__(self, cfg: ScriptedConfig, task: PushTask) -> None:
        self.task, self.cfg = task, cfg
        self.module = nn.ModuleDict()

    def act(self, state: torch.Tensor) -> torch.Tensor:
        """state [B, E, F] -> action [B, 2]."""
        if self.cfg.policy == "expert":
            return expert_action(self.task.world, state)
        return torch.zeros(len(state), 2, dtype=state.dtype)

    def evaluate(self) -> dict[str, float]:
        task = self.task
        states, _, success = rollout(task.world, task.rollout_starts, task.episode_steps, lambda s, t: self.act(s))
        final = states[:, -1]
        test, probe = task.splits["test"], task.splits["probe"]
        first = self.act(test.obs.double()).float()  # [S, 2]: the action at each test window's state
        return {
            "success": success.double().mean().item(),
            "items/success": float(len(task.rollout_starts)),
            "final_dist": (final[:, 1, :2] - final[:, 2, :2]).norm(dim=1).mean().item(),
            "action_l1": (first - test.actions[:, 0]).abs().mean().item(),
            "probe/future_r2": future_r2(probe.obs.flatten(1), task.future_targets["probe"], test.obs.flatten(1),
                                         task.future_targets["test"], self.cfg.probe_l2),
        }


@METHODS.register("scripted", ScriptedConfig,
                  metrics=lambda cfg, task: ["success", "items/success", "final_dist", "action_l1", "probe/future_r2"])
def build(cfg: ScriptedConfig, model: nn.Module, task: Task) -> Scripted:
    if not isinstance(task, PushTask):
        raise TypeError(f"method scripted needs the push2d task, got {type(task).__name__}")
    return Scripted(cfg, task)
