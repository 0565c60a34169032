"""ACT-style action chunking (Zhao et al. 2023, "Learning Fine-Grained Bimanual Manipulation with Low-Cost
Hardware"), lite: a state encoder and a query decoder that predicts the next k actions at once.  No CVAE
(the scripted expert is deterministic), state vectors instead of images.

    StateEncoder   states [B, L, E, F] at times [L] -> tokens [B, L*E, d]: one token per entity and time step
                   (a linear embedding per entity kind + the fixed sin-cos code of the time step), a pre-norm
                   transformer over all of them.  The policy encodes the current state (L = 1, time 0); the
                   ACT-JEPA target encoder (an EMA copy) encodes the future states (times 1..T) with it.
    QueryDecoder   context [B, N, d_in] -> [B, Q, d_out]: Q learned queries read the context through a
                   transformer over [context; queries] (self-attention of the joint sequence: the I-JEPA
                   predictor's form of ACT's cross-attending decoder); the outputs at the queries projected.
    ActPolicy      obs [B, E, F] -> (actions [B, k, 2], context tokens [B, E, d]); model `act_policy`.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import nn

from baselines.models.transformer import init_weights
from baselines.ssl.blocks import Blocks
from baselines.ssl.positions import sincos_1d
from baselines.tasks.pushing import ACTION_DIM, PushTask
from harness.components import MODELS, Task
from harness.registry import ComponentConfig, must_divide
from harness.train.optim import no_weight_decay


class StateEncoder(nn.Module):
    def __init__(self, n_entities: int, n_features: int, d_model: int, n_layers: int, n_heads: int,
                 d_ff: int | None, dropout: float) -> None:
        super().__init__()
        self.d_model = d_model
        # [E, F, d], nn.Linear's scale (std 1/sqrt(F)): at GPT-2's 0.02 the state is ~1% of a token beside its
        # time code, and the policy learned no state dependence in 1000 steps (measured)
        self.weight = nn.Parameter(torch.randn(n_entities, n_features, d_model) / n_features ** 0.5)
        self.bias = nn.Parameter(torch.zeros(n_entities, d_model))  # [E, d]: also the entity-kind embedding
        self.blocks = Blocks(d_model, n_layers, n_heads, d_ff, dropout)
        init_weights(self.blocks, n_layers)
        no_weight_decay(self.bias)

    def forward(self, states: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        """states [B, L, E, F], times [L] -> tokens [B, L*E, d], time-major (time step l, entity e at l*E + e)."""
        x = torch.einsum("blef,efd->bled", states, self.weight) + self.bias  # [B, L, E, d]
        x = x + sincos_1d(times, self.d_model).to(x)[None, :, None, :]  # [B, L, E, d]
        return self.blocks(x.flatten(1, 2))  # [B, L*E, d]


class QueryDecoder(nn.Module):
    def __init__(self, d_in: int, d_model: int, d_out: int, n_queries: int, n_layers: int, n_heads: int,
                 d_ff: int | None = None) -> None:
        super().__init__()
        self.embed = nn.Linear(d_in, d_model)
        self.queries = nn.Parameter(torch.randn(n_queries, d_model) * 0.02)  # [Q, d]
        self.blocks = Blocks(d_model, n_layers, n_heads, d_ff, dropout=0.0)
        self.out = nn.Linear(d_model, d_out)
        init_weights(self, n_layers)
        no_weight_decay(self.queries)

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        """context [B, N, d_in] -> [B, Q, d_out]."""
        x = self.embed(context)  # [B, N, d]
        q = self.queries.expand(x.shape[0], -1, -1)  # [B, Q, d]
        y = self.blocks(torch.cat([x, q], dim=1))[:, x.shape[1]:]  # [B, Q, d]
        return self.out(y)  # [B, Q, d_out]


class ActPolicyConfig(ComponentConfig):
    name: Literal["act_policy"] = "act_policy"
    d_model: int = Field(default=64, ge=4)
    n_layers: int = Field(default=2, ge=1)  # encoder
    decoder_layers: int = Field(default=1, ge=1)
    n_heads: int = Field(default=4, ge=1)
    d_ff: int | None = Field(default=None, ge=1)  # None -> 4 * d_model
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)

    _heads_divide = must_divide("n_heads", "d_model")


class ActPolicy(nn.Module):
    def __init__(self, cfg: ActPolicyConfig, n_entities: int, n_features: int, chunk: int) -> None:
        super().__init__()
        self.cfg, self.chunk = cfg, chunk
        self.encoder = StateEncoder(n_entities, n_features, cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.d_ff, cfg.dropout)
        self.decoder = QueryDecoder(cfg.d_model, cfg.d_model, ACTION_DIM, chunk, cfg.decoder_layers, cfg.n_heads, cfg.d_ff)

    @property
    def d_model(self) -> int:
        return self.cfg.d_model

    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        """obs [B, E, F] -> context tokens [B, E, d] (the current state at time 0)."""
        return self.encoder(obs[:, None], torch.zeros(1, device=obs.device))  # [B, E, d]

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """obs [B, E, F] -> (action chunk [B, k, 2], context tokens [B, E, d])."""
        z = self.encode(obs)  # [B, E, d]
        return self.decoder(z), z  # [B, k, 2], [B, E, d]


def push_task(task: Task, user: str) -> PushTask:
    if not isinstance(task, PushTask):
        raise TypeError(f"{user} needs the push2d task; {type(task).__name__} is not one")
    return task


@MODELS.register("act_policy", ActPolicyConfig)
def build(cfg: ActPolicyConfig, task: Task) -> ActPolicy:
    t = push_task(task, "model act_policy")
    obs = t.train.obs  # [S, E, F]
    return ActPolicy(cfg, obs.shape[1], obs.shape[2], t.chunk)
