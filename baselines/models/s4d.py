"""S4D (Gu et al. 2022, "On the Parameterization and Initialization of Diagonal State Space Models").

forward(inputs [B, T] long) -> logits [B, T, V];  step(token [B], state) -> (logits [B, V], state).

Model: embedding -> n_layers pre-norm (LayerNorm) residual S4D layers -> LayerNorm -> head.
Layer: per channel h (H = d_model) a diagonal complex SSM with N/2 modes (conjugate pairs implicit),
S4D-Lin init A_n = -1/2 + i pi n, learnable log_dt (log-uniform in [dt_min, dt_max]), ZOH
discretisation  dA = exp(dt A),  dB = (exp(dt A) - 1) / A  (B = 1 folded into C).
  recurrence:  s_t = dA s_{t-1} + u_t,   y_t = 2 Re(C' . s_t) + D u_t,   C' = C dB
  convolution: y = K * u + D u,  K_l = 2 Re(sum_n C'_n dA_n^l)  (causal, via FFT of length 2T)
then GELU -> dropout -> Linear(H, 2H) -> GLU.  Training uses the convolution, generation the recurrence.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import nn

from baselines.models.recurrent_stack import RecurrentStack
from harness.components import MODELS, Task, token_task
from harness.registry import ComponentConfig
from harness.train.optim import no_weight_decay


class S4DConfig(ComponentConfig):
    d_model: int = Field(default=64, ge=1)
    n_layers: int = Field(default=6, ge=1)
    d_state: int = Field(default=64, ge=2)  # N (real size); N/2 complex modes per channel
    dt_min: float = Field(default=1e-3, gt=0.0)
    dt_max: float = Field(default=1e-1, gt=0.0)
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)

    @field_validator("d_state")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise ValueError(f"d_state={value} must be even (modes come in conjugate pairs)")
        return value


class S4DKernel(nn.Module):
    def __init__(self, cfg: S4DConfig) -> None:
        super().__init__()
        H, M = cfg.d_model, cfg.d_state // 2
        self.log_dt = nn.Parameter(torch.rand(H) * (math.log(cfg.dt_max) - math.log(cfg.dt_min)) + math.log(cfg.dt_min))
        self.C = nn.Parameter(torch.view_as_real(torch.randn(H, M, dtype=torch.cfloat)))  # [H, M, 2]
        self.log_A_real = nn.Parameter(torch.log(0.5 * torch.ones(H, M)))  # [H, M]
        self.A_imag = nn.Parameter(math.pi * torch.arange(M, dtype=torch.float32).repeat(H, 1))  # [H, M]
        no_weight_decay(self.log_A_real, self.A_imag)  # as in S4/S4D: no decay on the state matrix

    def discrete(self) -> tuple[torch.Tensor, torch.Tensor]:
        """dt A [H, M] complex (dA = exp(dt A)), C' = C dB [H, M] complex."""
        A = torch.complex(-torch.exp(self.log_A_real), self.A_imag)  # [H, M]
        dtA = A * torch.exp(self.log_dt).unsqueeze(-1)  # [H, M]
        return dtA, torch.view_as_complex(self.C) * torch.expm1(dtA) / A

    def forward(self, T: int) -> torch.Tensor:
        """The convolution kernel K [T, H]."""
        dtA, Cp = self.discrete()
        powers = torch.exp(dtA.unsqueeze(-1) * torch.arange(T, device=dtA.device))  # dA^l: [H, M, T]
        return 2 * torch.einsum("hm,hml->lh", Cp, powers).real  # [T, H]


class S4DLayer(nn.Module):
    def __init__(self, cfg: S4DConfig) -> None:
        super().__init__()
        H = cfg.d_model
        self.norm = nn.LayerNorm(H)
        self.kernel = S4DKernel(cfg)
        self.D = nn.Parameter(torch.randn(H))
        self.drop = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(H, 2 * H)

    def _mix(self, y: torch.Tensor) -> torch.Tensor:
        return self.drop(F.glu(self.out(self.drop(F.gelu(y))), dim=-1))  # [..., H]

    def ssm_conv(self, u: torch.Tensor) -> torch.Tensor:
        """u [B, T, H] -> y [B, T, H] by causal FFT convolution with K."""
        T = u.shape[1]
        k = self.kernel(T)  # [T, H]
        y = torch.fft.irfft(torch.fft.rfft(u, n=2 * T, dim=1) * torch.fft.rfft(k, n=2 * T, dim=0), n=2 * T, dim=1)
        return y[:, :T] + u * self.D  # [B, T, H]

    def ssm_recurrent(self, u: torch.Tensor) -> torch.Tensor:
        """Reference for `ssm_conv`: the same map by the recurrence, one step at a time."""
        s = self.init_state(u.shape[0])
        ys = []
        for t in range(u.shape[1]):
            y, s = self.ssm_step(u[:, t], s)
            ys.append(y)
        return torch.stack(ys, dim=1)  # [B, T, H]

    def ssm_step(self, u: torch.Tensor, s: torch.Tensor):
        """u [B, H], s [B, H, M] complex -> y [B, H], next s."""
        dtA, Cp = self.kernel.discrete()
        s = torch.exp(dtA) * s + u.unsqueeze(-1)
        return 2 * (s * Cp).sum(-1).real + u * self.D, s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self._mix(self.ssm_conv(self.norm(x)))

    def init_state(self, batch_size: int) -> torch.Tensor:
        c = torch.view_as_complex(self.kernel.C)
        return c.new_zeros(batch_size, *c.shape)  # [B, H, M] complex

    def step(self, x: torch.Tensor, s: torch.Tensor):
        y, s = self.ssm_step(self.norm(x), s)
        return x + self._mix(y), s


class S4D(RecurrentStack):
    def __init__(self, cfg: S4DConfig, vocab_size: int) -> None:
        super().__init__(vocab_size, cfg.d_model, [S4DLayer(cfg) for _ in range(cfg.n_layers)], nn.LayerNorm(cfg.d_model))
        self.cfg = cfg


@MODELS.register("s4d", S4DConfig)
def build(cfg: S4DConfig, task: Task) -> S4D:
    return S4D(cfg, vocab_size=token_task(task, "model s4d").vocab_size)
