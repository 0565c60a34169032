"""A small deterministic 2-D pushing simulator, its scripted expert, and the demonstrations of the policy_jepa
suite (ACT / ACT-JEPA, arXiv 2501.14622, at CPU size).

The world is the unit square.  A point-mass agent (radius AGENT_R) with inertia pushes a disk (radius DISK_R)
to a goal; nothing in it is random once the start is drawn.  One step of length `dt`, action a in [-1, 1]^2:

    disk      q <- q + dt u,  u <- u (1 - disk_damping dt)                 the disk slides and slows down
    agent     v <- v + dt (force a / mass - damping v),  p <- p + dt v     (inertia: true)
              v <- force a / damping,  p <- p + dt v                       (inertia: false, the kinematic off-knob)
    contact   if |q - p| < DISK_R + AGENT_R: the disk is moved out along n = (q - p)/|q - p| and its velocity
              along n becomes at least the agent's                          (the agent pushes, never pulls);
              a disk held by a wall pushes the agent back out instead
    walls     both clamped into the square, the velocity into a wall zeroed

A state is three entity rows of four numbers, [E=3, F=4]: agent (px, py, vx, vy), disk (qx, qy, ux, uy),
goal (gx, gy, 0, 0).  An episode succeeds once the disk's centre comes within `goal_tol` of the goal (latched).

The expert (`expert_action`): go to the staging point behind the disk (on the line goal -> disk), around the
disk when the straight way would hit it, then push through the disk's centre towards the goal, slowing down
near it, and brakes once the disk is well inside the goal; a PD law on position turns each target into a force
(the kinematic agent: a velocity).  Deterministic.

`push2d` task: `n_demos` expert episodes from `demo_seed` (only successful ones are kept; the starts are drawn
in fixed chunks, so the demos of a smaller set are a prefix of a larger one's), cut into windows up to the step the goal is reached
    obs [E, F] = state_t,  actions [k, 2] = a_t .. a_{t+k-1},  future [T, E, F] = state_{t+1} .. state_{t+T}
Eval splits, fixed for every seed and dataset size (from `eval_seed`): "probe" (windows of `n_probe_demos`
episodes: what the future-state probe is fit on) and "test" (windows of `n_test_demos` other episodes:
held-out action error and the probe's score); `rollout_starts` (`n_rollouts` starts for closed-loop success).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import torch
from pydantic import Field, model_validator

from baselines.tasks.labeled import epoch_batches
from harness.components import TASKS
from harness.registry import ComponentConfig

AGENT_R, DISK_R = 0.03, 0.08
N_ENTITIES, N_FEATURES, ACTION_DIM = 3, 4, 2
AGENT, DISK, GOAL = 0, 1, 2
START_CHUNK = 256  # starts are drawn in chunks of this many candidates (prefix-stable demos)


class PushConfig(ComponentConfig):
    name: Literal["push2d"] = "push2d"
    n_demos: int = Field(default=50, ge=1)
    episode_steps: int = Field(default=80, ge=10)
    chunk: int = Field(default=8, ge=1)  # k: actions predicted per step
    horizon: int = Field(default=8, ge=1)  # T: future states a window carries
    probe_horizon: int = Field(default=8, ge=1)  # the probe predicts the state this many steps ahead
    dt: float = Field(default=0.1, gt=0.0)
    mass: float = Field(default=1.0, gt=0.0)
    force: float = Field(default=3.0, gt=0.0)
    damping: float = Field(default=2.0, gt=0.0)
    disk_damping: float = Field(default=4.0, ge=0.0)
    inertia: bool = True  # false: the kinematic agent (velocity = force a / damping), the off-knob
    goal_tol: float = Field(default=0.05, gt=0.0)
    n_probe_demos: int = Field(default=60, ge=2)
    n_test_demos: int = Field(default=40, ge=2)
    n_rollouts: int = Field(default=100, ge=1)
    demo_seed: int = 0
    eval_seed: int = 9876

    @model_validator(mode="after")
    def _probe_within_horizon(self) -> PushConfig:
        if self.probe_horizon > self.horizon:
            raise ValueError(f"probe_horizon={self.probe_horizon} must be <= horizon={self.horizon} (read from the window's future)")
        return self

    def dry_config(self, batch_size: int = 16) -> PushConfig:
        return self.model_copy(update={"n_demos": 2, "n_probe_demos": 2, "n_test_demos": 2, "n_rollouts": 2})


@dataclass(frozen=True)
class World:
    """The simulator's constants (a PushConfig's physics)."""

    dt: float = 0.1
    mass: float = 1.0
    force: float = 3.0
    damping: float = 2.0
    disk_damping: float = 4.0
    inertia: bool = True
    goal_tol: float = 0.05

    @classmethod
    def of(cls, cfg: PushConfig) -> World:
        return cls(cfg.dt, cfg.mass, cfg.force, cfg.damping, cfg.disk_damping, cfg.inertia, cfg.goal_tol)


def _clamp(pos: torch.Tensor, vel: torch.Tensor, radius: float) -> tuple[torch.Tensor, torch.Tensor]:
    """pos, vel [B, 2] -> inside [radius, 1 - radius]^2, the velocity into a wall zeroed."""
    low, high = pos < radius, pos > 1 - radius  # [B, 2]
    vel = torch.where((low & (vel < 0)) | (high & (vel > 0)), torch.zeros_like(vel), vel)
    return pos.clamp(radius, 1 - radius), vel


def step(world: World, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """state [B, E, F], action [B, 2] (clipped to [-1, 1]) -> the next state [B, E, F] (module docstring)."""
    a = action.to(state.dtype).clamp(-1.0, 1.0)  # [B, 2]
    p, v, q, u = state[:, AGENT, :2], state[:, AGENT, 2:], state[:, DISK, :2], state[:, DISK, 2:]  # [B, 2] each
    q = q + world.dt * u
    u = u * max(1.0 - world.disk_damping * world.dt, 0.0)
    if world.inertia:
        v = v + world.dt * (world.force * a / world.mass - world.damping * v)
    else:
        v = world.force * a / world.damping
    p, v = _clamp(p + world.dt * v, v, AGENT_R)
    gap = q - p  # [B, 2]
    dist = gap.norm(dim=1, keepdim=True).clamp_min(1e-9)  # [B, 1]
    n = gap / dist  # [B, 2]
    overlap = (DISK_R + AGENT_R - dist).clamp_min(0.0)  # [B, 1]; > 0: in contact
    touching = overlap > 0
    q = q + n * overlap
    push = ((v * n).sum(1, keepdim=True) - (u * n).sum(1, keepdim=True)).clamp_min(0.0)  # [B, 1]
    u = u + torch.where(touching, push, torch.zeros_like(push)) * n
    q, u = _clamp(q, u, DISK_R)
    # a disk held by a wall stops the agent: whatever overlap is left moves the agent back out
    gap = q - p
    dist = gap.norm(dim=1, keepdim=True).clamp_min(1e-9)  # [B, 1]
    n = gap / dist
    blocked = (DISK_R + AGENT_R - dist) > 1e-12  # [B, 1]
    p = torch.where(blocked, q - n * (DISK_R + AGENT_R), p)
    v = torch.where(blocked, v - (v * n).sum(1, keepdim=True).clamp_min(0.0) * n, v)
    return torch.stack([torch.cat([p, v], 1), torch.cat([q, u], 1), state[:, GOAL]], dim=1)  # [B, E, F]


def reached(world: World, state: torch.Tensor) -> torch.Tensor:
    """state [B, E, F] -> [B] bool: the disk's centre is within goal_tol of the goal."""
    return (state[:, DISK, :2] - state[:, GOAL, :2]).norm(dim=1) < world.goal_tol


def sample_starts(n: int, seed: int) -> torch.Tensor:
    """n start states [n, E, F] (float64, velocities 0): agent anywhere, disk in the middle, goal at least 0.3
    from the disk, agent at least 0.2 from it.  Drawn in chunks of START_CHUNK candidates from `seed`, so the
    first n of a larger draw are the n of a smaller one."""
    gen = torch.Generator().manual_seed(seed)
    kept: list[torch.Tensor] = []
    count = 0
    while count < n:
        c = torch.rand(START_CHUNK, 6, generator=gen, dtype=torch.float64)  # [C, 6]
        p, q, g = 0.1 + 0.8 * c[:, 0:2], 0.25 + 0.5 * c[:, 2:4], 0.15 + 0.7 * c[:, 4:6]
        ok = ((q - g).norm(dim=1) > 0.3) & ((p - q).norm(dim=1) > 0.2)  # [C]
        zeros = torch.zeros_like(p)
        kept.append(torch.stack([torch.cat([p, zeros], 1), torch.cat([q, zeros], 1), torch.cat([g, zeros], 1)], 1)[ok])
        count += int(ok.sum())
    return torch.cat(kept)[:n]  # [n, E, F]


def expert_action(world: World, state: torch.Tensor) -> torch.Tensor:
    """state [B, E, F] -> the scripted expert's action [B, 2] in [-1, 1] (module docstring)."""
    p, v, q, g = state[:, AGENT, :2], state[:, AGENT, 2:], state[:, DISK, :2], state[:, GOAL, :2]  # [B, 2]
    to_goal = g - q
    dist_goal = to_goal.norm(dim=1, keepdim=True).clamp_min(1e-9)  # [B, 1]
    d = to_goal / dist_goal  # [B, 2] pushing direction
    perp = torch.stack([-d[:, 1], d[:, 0]], 1)  # [B, 2]
    rel = p - q
    along, side = (rel * d).sum(1, keepdim=True), (rel * perp).sum(1, keepdim=True)  # [B, 1]
    contact = DISK_R + AGENT_R
    staging = q - d * (contact + 0.04)
    behind = along < -0.5 * contact  # [B, 1]
    # on the line behind the disk (|side| < 0.03) the agent pushes; 0.03 .. 0.05 off it, a linear blend of pushing
    # and re-staging (no switch that flips back and forth between steps); further off, it goes round to the staging point
    on_line = ((0.05 - side.abs()) / 0.02).clamp(0.0, 1.0)  # [B, 1]
    # pushing: aim through the disk's centre, a lead that shrinks near the goal (so the disk stops on it)
    lead = (1.2 * dist_goal).clamp(max=0.12)
    push_target = q - d * contact + d * lead
    # around the disk, on the agent's side: level with it when in front of it, then beside-and-behind it
    sgn = torch.where(side >= 0, 1.0, -1.0).to(q)  # [B, 1]
    level = q + perp * sgn * (contact + 0.05) - d * 0.03
    beside = level - d * (contact + 0.01)
    approach = torch.where(along > 0, level, torch.where(along > -contact, beside, staging))
    target = torch.where(behind, on_line * push_target + (1 - on_line) * staging, approach)
    target = torch.where(dist_goal < 0.6 * world.goal_tol, p, target)  # done: brake and stay
    if world.inertia:  # PD on position: a force towards the target, damped by the agent's velocity
        return (6.0 * (target - p) - 1.5 * v).clamp(-1.0, 1.0)
    return (3.0 * (target - p) * world.damping / world.force).clamp(-1.0, 1.0)  # a velocity towards it


def rollout(world: World, starts: torch.Tensor, steps: int,
            policy: Callable[[torch.Tensor, int], torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run `policy(state [B, E, F], t) -> action [B, 2]` from `starts` [B, E, F] for `steps` steps.
    Returns states [B, steps + 1, E, F], actions [B, steps, 2] (as clipped by the world) and success [B]."""
    state = starts
    states, actions = [state], []
    success = reached(world, state)  # [B]
    for t in range(steps):
        a = policy(state, t).to(state.dtype).clamp(-1.0, 1.0)  # [B, 2]
        state = step(world, state, a)
        states.append(state)
        actions.append(a)
        success = success | reached(world, state)
    return torch.stack(states, 1), torch.stack(actions, 1), success


@dataclass
class PushBatch:
    """obs [B, E, F] the state at t; actions [B, k, 2] the expert's next k actions; future [B, T, E, F] the states
    t+1 .. t+T (all float32)."""

    obs: torch.Tensor
    actions: torch.Tensor
    future: torch.Tensor

    def __len__(self) -> int:
        return self.obs.shape[0]

    def to(self, device: torch.device) -> PushBatch:
        return PushBatch(self.obs.to(device), self.actions.to(device), self.future.to(device))

    def slice(self, start: int, stop: int) -> PushBatch:
        return PushBatch(self.obs[start:stop], self.actions[start:stop], self.future[start:stop])

    def subset(self, index: torch.Tensor) -> PushBatch:
        return PushBatch(self.obs[index], self.actions[index], self.future[index])


def first_reached(world: World, states: torch.Tensor) -> torch.Tensor:
    """states [N, L+1, E, F] -> [N] long: the first step whose state has the disk on the goal (L+1 if none)."""
    hit = torch.stack([reached(world, states[:, i]) for i in range(states.shape[1])], 1)  # [N, L+1]
    return (hit.long().cumsum(1) == 0).sum(1)  # [N]


def windows(states: torch.Tensor, actions: torch.Tensor, chunk: int, horizon: int,
            done: torch.Tensor | None = None) -> PushBatch:
    """Episodes states [N, L+1, E, F], actions [N, L, 2] -> the windows t = 0 .. L - max(k, T) of each, episode by
    episode (row n * W + t, W = L - max(k, T) + 1); with `done` [N] (first_reached) only those with t < done[n]:
    the steps the expert acted before the goal was reached (the hold after it is not demonstrated)."""
    L = actions.shape[1]
    starts = range(L - max(chunk, horizon) + 1)
    obs = torch.stack([states[:, t] for t in starts], 1)  # [N, W, E, F]
    act = torch.stack([actions[:, t:t + chunk] for t in starts], 1)  # [N, W, k, 2]
    fut = torch.stack([states[:, t + 1:t + 1 + horizon] for t in starts], 1)  # [N, W, T, E, F]
    keep = torch.ones(obs.shape[:2], dtype=torch.bool) if done is None else torch.arange(len(starts))[None] < done[:, None]
    return PushBatch(obs[keep].float(), act[keep].float(), fut[keep].float())  # rows n * W + t, in that order


class PushTask:
    """The push2d task (module docstring).  `world`, `episode_steps`, `rollout_starts` [R, E, F] and the
    probe's targets are what the act method's closed-loop and probe evaluations read."""

    def __init__(self, cfg: PushConfig) -> None:
        self.cfg, self.world = cfg, World.of(cfg)
        self.episode_steps, self.chunk, self.horizon = cfg.episode_steps, cfg.chunk, cfg.horizon
        self.demo_success, states, actions = self.demos(cfg.n_demos, cfg.demo_seed)
        self.train = self.windows(states, actions)
        n_eval = cfg.n_probe_demos + cfg.n_test_demos
        _, states, actions = self.demos(n_eval, cfg.eval_seed)
        probe = slice(0, cfg.n_probe_demos)
        test = slice(cfg.n_probe_demos, n_eval)
        self.splits = {"probe": self.windows(states[probe], actions[probe]), "test": self.windows(states[test], actions[test])}
        self.future_targets = {name: self.future_state(name) for name in self.splits}
        self.rollout_starts = sample_starts(cfg.n_rollouts, cfg.eval_seed + 1)  # [R, E, F] float64

    def demos(self, n: int, seed: int) -> tuple[float, torch.Tensor, torch.Tensor]:
        """(success rate of the expert over the episodes tried, states [n, L+1, E, F], actions [n, L, 2]) of the
        first n successful expert episodes from `seed`'s starts."""
        tried = 0
        kept_s, kept_a = [], []
        while sum(len(s) for s in kept_s) < n:
            starts = sample_starts(tried + 2 * n, seed)[tried:]  # the next candidates, prefix-stable
            tried += len(starts)
            states, actions, ok = rollout(self.world, starts, self.episode_steps, lambda s, t: expert_action(self.world, s))
            kept_s.append(states[ok])
            kept_a.append(actions[ok])
        kept = sum(len(s) for s in kept_s)
        return kept / tried, torch.cat(kept_s)[:n], torch.cat(kept_a)[:n]

    def windows(self, states: torch.Tensor, actions: torch.Tensor) -> PushBatch:
        """The windows of expert episodes up to the goal (windows with done = first_reached)."""
        return windows(states, actions, self.chunk, self.horizon, first_reached(self.world, states))

    def future_state(self, split: str) -> torch.Tensor:
        """The probe's regression targets of a split: agent and disk positions probe_horizon steps after each
        window's obs, [S, 4] (probe_horizon <= horizon: read from the window's future)."""
        fut = self.splits[split].future[:, self.cfg.probe_horizon - 1]  # [S, E, F]
        return torch.cat([fut[:, AGENT, :2], fut[:, DISK, :2]], 1)  # [S, 4]

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[PushBatch]:
        return epoch_batches(self.train, batch_size, generator)

    def eval_splits(self) -> dict[str, PushBatch]:
        return self.splits


@TASKS.register("push2d", PushConfig)
def build(cfg: PushConfig, seed: int) -> PushTask:
    del seed  # demos and eval sets are fixed by demo_seed / eval_seed; the run's seed orders the batches
    return PushTask(cfg)


__all__ = ["PushConfig", "PushTask", "PushBatch", "World", "step", "reached", "sample_starts", "expert_action",
           "rollout", "windows", "first_reached"]
