"""Mamba (Gu & Dao 2023), a selective state-space model, in pure PyTorch.

forward(inputs [B, T] long) -> logits [B, T, V];  step(token [B], state) -> (logits [B, V], state).

Model: embedding -> n_layers pre-norm (RMSNorm) residual Mamba blocks -> RMSNorm -> head.
Block: in_proj to (x, z) [E = expand * d_model each]; x -> causal depthwise conv1d (d_conv) -> SiLU;
x_proj(x) -> (dt [dt_rank], B [N], C [N]); dt = softplus(dt_proj(dt)); A = -exp(A_log) (S4D-real init);
selective scan  h_t = exp(dt_t A) h_{t-1} + dt_t B_t x_t,  y_t = C_t . h_t + D x_t;  out_proj(y * SiLU(z)).

Three scans compute the same recurrence:
- `selective_scan` (parallel): a chunked two-level scan over time. Time is cut into chunks of ~sqrt(T);
  all chunks are scanned at once (one vectorised step per position inside a chunk), then the chunk
  carries are propagated and folded back in with the within-chunk cumulative decay.  Only products of
  decays in (0, 1] are formed (no division, no log-space differences), so it is stable for any dt.
  `ChunkedScan` gives it a hand-written backward: the adjoint is the same scan run backwards in time.
- `selective_scan_fused` (fused): the sequential loop as one autograd node (`FusedScan`), time-major, in
  blocks of a few steps: a block's decays and inputs are formed at once in reused [k, B, E, N] buffers and
  only the recurrence runs step by step; forward keeps the state before each block, backward recomputes a
  block's states from it and runs the adjoint recurrence backwards in time.  Also only products of decays.
- `selective_scan_ref` (sequential, the test oracle): the plain loop, differentiated by autograd.

Which one trains (`scan`): `parallel`, `fused`, `sequential`; `auto` = parallel on CUDA, fused elsewhere.
On CPU the work is memory-bound, and a fresh [B, T, E, N] buffer costs more than the math on it (page
faults: 17 ms to allocate and fill 32 MiB on this repo's 2-core box, 1.6 ms to refill it).  The parallel
scan (and mambapy's Blelloch scan) materialise several such tensors per pass; autograd through the plain
loop records T small steps; the fused scan allocates nothing of size [B, T, E, N] (its checkpoints are
1/k of it) and keeps its working set in cache.  Measured there (1 thread), fwd+bwd of one scan, E=128,
N=16: B=32, T=128: parallel 626 ms, sequential 233 ms, fused 57 ms; B=16, T=256: 306 / 358 / 56 ms;
B=32, T=64: 76 / 82 / 32 ms.  Of a whole mixer against mambapy in the same process
(benchmarks/test_bench_mamba.py, ours / mambapy, over 3 runs): B=16, T=256: parallel 0.47-0.74,
sequential 0.67-0.81, fused 0.14-0.17; B=32, T=64 (the copying suite): 0.53-0.55 / 0.47-0.56 / 0.21-0.27.
(mambapy's time swings with the page faults: 129k minor faults per fwd+bwd at B=16, T=256; the fused
scan's mixer has none there.)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import nullcontext
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn
from torch.autograd.function import once_differentiable

from baselines.models.recurrent_stack import RecurrentStack
from harness.components import MODELS, Task, token_task
from harness.registry import ComponentConfig
from harness.train.optim import no_weight_decay


class MambaConfig(ComponentConfig):
    d_model: int = Field(default=64, ge=1)
    n_layers: int = Field(default=3, ge=1)
    d_state: int = Field(default=16, ge=1)  # N
    expand: int = Field(default=2, ge=1)  # E = expand * d_model
    d_conv: int = Field(default=4, ge=1)
    dt_rank: int | None = Field(default=None, ge=1)  # None -> ceil(d_model / 16)
    dt_min: float = Field(default=1e-3, gt=0.0)
    dt_max: float = Field(default=1e-1, gt=0.0)
    scan: Literal["auto", "parallel", "fused", "sequential"] = "auto"  # see the module docstring


# ---------------------------------------------------------------- scans of h_t = a_t * h_{t-1} + u_t


def _chunk_len(T: int) -> int:
    return max(1, round(math.sqrt(T)))


def _scan(a: torch.Tensor, u: torch.Tensor, reverse: bool = False) -> torch.Tensor:
    """h_t = a_t h_{t-1} + u_t (reverse: h_t = a_t h_{t+1} + u_t), zero initial state, over dim 1.
    a, u: [B, T, ...] -> h [B, T, ...]."""
    B, T = u.shape[:2]
    L = _chunk_len(T)
    nc = -(-T // L)
    pad = nc * L - T
    if pad:  # padded steps carry no input; in forward order they come last, so they change nothing
        widths = (0, 0) * (u.dim() - 2) + ((pad, 0) if reverse else (0, pad))
        a, u = F.pad(a, widths, value=1.0), F.pad(u, widths)
    rest = u.shape[2:]
    a, u = a.reshape(B, nc, L, *rest), u.reshape(B, nc, L, *rest)  # [B, nc, L, ...]
    h = torch.empty_like(u)
    P = torch.empty_like(a)  # cumulative decay inside each chunk
    order = range(L - 1, -1, -1) if reverse else range(L)
    prev = None
    for i in order:  # all chunks at once
        if prev is None:
            h[:, :, i] = u[:, :, i]
            P[:, :, i] = a[:, :, i]
        else:
            torch.addcmul(u[:, :, i], a[:, :, i], h[:, :, prev], out=h[:, :, i])
            torch.mul(a[:, :, i], P[:, :, prev], out=P[:, :, i])
        prev = i
    last = 0 if reverse else L - 1
    chunks = range(nc - 2, -1, -1) if reverse else range(1, nc)
    carry = h[:, nc - 1 if reverse else 0, last]  # [B, ...]: final state of the first chunk scanned
    for c in chunks:  # propagate carries chunk by chunk, correcting each chunk on the way
        h[:, c].addcmul_(P[:, c], carry.unsqueeze(1))
        carry = h[:, c, last]
    h = h.reshape(B, nc * L, *rest)
    return h[:, pad:] if reverse else h[:, :T]


class ChunkedScan(torch.autograd.Function):
    """h = scan(a, u) with the adjoint scan as backward: lam_t = g_t + a_{t+1} lam_{t+1};
    dL/du_t = lam_t, dL/da_t = lam_t * h_{t-1}."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        h = _scan(a, u)
        ctx.save_for_backward(a, h)
        return h

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        a, h = ctx.saved_tensors
        a_next = F.pad(a[:, 1:], (0, 0) * (a.dim() - 2) + (0, 1))  # a_{t+1}, 0 past the end
        lam = _scan(a_next, g.contiguous(), reverse=True)
        grad_a = torch.empty_like(a)
        grad_a[:, 0] = 0.0
        torch.mul(lam[:, 1:], h[:, :-1], out=grad_a[:, 1:])
        return grad_a, lam


def selective_scan(x, dt, A, B, C, D):
    """x, dt: [B, T, E]; A: [E, N]; B, C: [B, T, N]; D: [E] -> y [B, T, E]."""
    a = torch.exp(dt.unsqueeze(-1) * A)  # [B, T, E, N]
    u = (dt * x).unsqueeze(-1) * B.unsqueeze(2)  # [B, T, E, N]
    h = ChunkedScan.apply(a, u)  # [B, T, E, N]
    return (h @ C.unsqueeze(-1)).squeeze(-1) + D * x  # [B, T, E]


def selective_scan_ref(x, dt, A, B, C, D):
    """Sequential reference of `selective_scan` (same signature)."""
    h = x.new_zeros(x.shape[0], A.shape[0], A.shape[1])  # [B, E, N]
    ys = []
    for t in range(x.shape[1]):
        h = torch.exp(dt[:, t, :, None] * A) * h + (dt[:, t] * x[:, t])[:, :, None] * B[:, t, None, :]
        ys.append((h * C[:, t, None, :]).sum(-1))  # [B, E]
    return torch.stack(ys, dim=1) + D * x  # [B, T, E]


# ---------------------------------------------------------------- fused scan: the loop, with a hand-written backward

_BLOCK_ELEMS = 1 << 18  # elements of one [k, B, E, N] work buffer (1 MiB in float32): k = time steps per block


def _block_states(dt, dtx, B, A, h0, a, h) -> None:
    """Decays a_t = exp(dt_t A) and states h_t of one block of k steps, from the state h0 before it.
    dt, dtx (= dt * x): [k, B, E]; B: [k, B, N]; A: [E, N]; h0: [B, E, N]; a, h (written): [k, B, E, N]."""
    torch.mul(dt.unsqueeze(-1), A, out=a).exp_()
    torch.mul(dtx.unsqueeze(-1), B.unsqueeze(2), out=h)  # inputs u_t = dt_t x_t B_t
    prev = h0
    for a_t, h_t in zip(a, h):  # h_t = a_t h_{t-1} + u_t, in place
        h_t.addcmul_(a_t, prev)
        prev = h_t


class FusedScan(torch.autograd.Function):
    """y_t = C_t . h_t, h_t = exp(dt_t A) h_{t-1} + dt_t x_t B_t: the loop of `selective_scan_ref`, time-major
    ([T, B, E, N]: one step is a contiguous slice), cut into blocks of k steps.  Per block the decays and
    inputs are formed for all k steps at once into reused [k, B, E, N] buffers, and only the recurrence runs
    step by step.  Forward keeps the state before each block (a checkpoint); backward recomputes a block's
    states from it and runs the adjoint lam_t = C_t gy_t + a_{t+1} lam_{t+1} backwards in time.
    dL/du_t = lam_t and dL/d(dt_t A) = lam_t a_t h_{t-1} give all input gradients.  Nothing of size
    [B, T, E, N] is allocated (fresh large buffers cost page faults on CPU, more than recomputing).
    Tried, not kept: torch.jit.script of the step loop (6% on one block's states; deprecated in torch 2.13),
    a [B, N, E] state layout (2-8% on the mixer, within the box's noise)."""

    @staticmethod
    def forward(ctx, x, dt, A, B, C):
        Bs, T, E = x.shape
        N = A.shape[1]
        K = max(1, min(T, _BLOCK_ELEMS // (Bs * E * N)))
        dtx = (dt * x).transpose(0, 1).contiguous()  # [T, B, E]
        dt, B, C = (t.transpose(0, 1).contiguous() for t in (dt, B, C))  # [T, B, E], [T, B, N] x 2
        a, h = x.new_empty(K, Bs, E, N), x.new_empty(K, Bs, E, N)
        y = x.new_empty(T, Bs, E)
        blocks = list(zip(dt.split(K), dtx.split(K), B.split(K), C.split(K), y.split(K)))
        h0 = x.new_empty(len(blocks), Bs, E, N)  # h0[c]: the state before block c
        h0[0] = 0.0
        for c, (dt_c, dtx_c, B_c, C_c, y_c) in enumerate(blocks):
            k = len(dt_c)
            _block_states(dt_c, dtx_c, B_c, A, h0[c], a[:k], h[:k])
            torch.matmul(h[:k], C_c.unsqueeze(-1), out=y_c.unsqueeze(-1))  # y_t = h_t . C_t (over N)
            if c + 1 < len(blocks):
                h0[c + 1] = h[k - 1]
        ctx.save_for_backward(x, A, dt, dtx, B, C, h0)
        ctx.block = K
        return y.transpose(0, 1)  # [B, T, E]

    @staticmethod
    @once_differentiable
    def backward(ctx, gy):
        x, A, dt, dtx, B, C, h0 = ctx.saved_tensors  # time-major: [T, B, E], [T, B, N]
        K, (T, Bs, E), N = ctx.block, dt.shape, A.shape[1]
        gy = gy.transpose(0, 1).contiguous()  # [T, B, E]
        a, h, lam = (x.new_empty(K, Bs, E, N) for _ in range(3))
        g_dtx, g_dt = x.new_empty(T, Bs, E), x.new_empty(T, Bs, E)  # dL/d(dt x); dL/d dt through the decays
        gB, gC = x.new_empty(T, Bs, N), x.new_empty(T, Bs, N)
        gA = A.new_zeros(E, N)
        carry = x.new_zeros(Bs, E, N)  # a_t lam_t at the first step t of the block after this one
        blocks = list(zip(dt.split(K), dtx.split(K), B.split(K), C.split(K), gy.split(K),
                          g_dtx.split(K), g_dt.split(K), gB.split(K), gC.split(K)))
        for c in range(len(blocks) - 1, -1, -1):
            dt_c, dtx_c, B_c, C_c, gy_c, g_dtx_c, g_dt_c, gB_c, gC_c = blocks[c]
            k = len(dt_c)
            a_c, h_c, lam_c = a[:k], h[:k], lam[:k]
            _block_states(dt_c, dtx_c, B_c, A, h0[c], a_c, h_c)
            torch.matmul(gy_c.unsqueeze(-2), h_c, out=gC_c.unsqueeze(-2))  # dL/dC_t = gy_t . h_t (over E)
            torch.mul(gy_c.unsqueeze(-1), C_c.unsqueeze(2), out=lam_c)  # dL/dh_t from y_t
            lam_c[k - 1] += carry
            for t in range(k - 2, -1, -1):  # lam_t += a_{t+1} lam_{t+1}
                lam_c[t].addcmul_(a_c[t + 1], lam_c[t + 1])
            torch.mul(a_c[0], lam_c[0], out=carry)
            torch.matmul(lam_c, B_c.unsqueeze(-1), out=g_dtx_c.unsqueeze(-1))  # lam_t . B_t (over N)
            torch.matmul(dtx_c.unsqueeze(-2), lam_c, out=gB_c.unsqueeze(-2))  # dL/dB_t = (dt x)_t . lam_t (over E)
            q = lam_c  # q_t = dL/d(dt_t A) = lam_t a_t h_{t-1}, in lam's buffer
            q[1:].mul_(h_c[:-1])
            q[0].mul_(h0[c])
            q.mul_(a_c)
            q_e = q.view(k * Bs, E, N).transpose(0, 1)  # [E, k B, N]
            g_dt_c.copy_(torch.bmm(q_e, A.unsqueeze(-1)).view(E, k * Bs).t().view(k, Bs, E))  # q_t . A (over N)
            gA += torch.mul(q, dt_c.unsqueeze(-1), out=h_c).sum((0, 1))  # sum over t, b of q_t dt_t
        g_dt.addcmul_(g_dtx, x.transpose(0, 1))
        gx = g_dtx.mul_(dt)
        return gx.transpose(0, 1), g_dt.transpose(0, 1), gA, gB.transpose(0, 1), gC.transpose(0, 1)


def selective_scan_fused(x, dt, A, B, C, D):
    """`selective_scan_ref` (same signature and result) as one autograd node: see `FusedScan`."""
    return FusedScan.apply(x, dt, A, B, C) + D * x


ScanFn = Callable[..., torch.Tensor]
SCANS: dict[str, ScanFn] = {"parallel": selective_scan, "fused": selective_scan_fused, "sequential": selective_scan_ref}


def pick_scan(mode: str, device: torch.device) -> ScanFn:
    """`auto`: the chunked parallel scan where there is parallel hardware (CUDA), the fused loop elsewhere."""
    if mode == "auto":
        mode = "parallel" if device.type == "cuda" else "fused"
    return SCANS[mode]


# ---------------------------------------------------------------- model


class MambaBlock(nn.Module):
    """The Mamba mixer.  Parameter names match mambapy's MambaBlock (state dicts are interchangeable)."""

    def __init__(self, cfg: MambaConfig) -> None:
        super().__init__()
        E, N = cfg.expand * cfg.d_model, cfg.d_state
        self.d_inner, self.d_state, self.d_conv = E, N, cfg.d_conv
        self.dt_rank = cfg.dt_rank if cfg.dt_rank is not None else math.ceil(cfg.d_model / 16)
        self.in_proj = nn.Linear(cfg.d_model, 2 * E, bias=False)
        self.conv1d = nn.Conv1d(E, E, cfg.d_conv, groups=E, padding=cfg.d_conv - 1)
        self.x_proj = nn.Linear(E, self.dt_rank + 2 * N, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, E)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, N + 1, dtype=torch.float32)).repeat(E, 1))  # [E, N]
        self.D = nn.Parameter(torch.ones(E))
        no_weight_decay(self.A_log)  # as in Mamba: the state matrix is not a weight to shrink
        self.out_proj = nn.Linear(E, cfg.d_model, bias=False)
        # dt = softplus(dt_proj(.)) starts log-uniform in [dt_min, dt_max]: bias = softplus^-1(dt)
        std = self.dt_rank**-0.5
        nn.init.uniform_(self.dt_proj.weight, -std, std)
        dt = torch.exp(torch.rand(E) * (math.log(cfg.dt_max) - math.log(cfg.dt_min)) + math.log(cfg.dt_min))
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
        self.scan_mode = cfg.scan
        self.scan: ScanFn | None = None  # None: chosen per call from scan_mode; tests set selective_scan_ref

    def _ssm_params(self, x: torch.Tensor):
        """x [..., E] -> dt [..., E], B [..., N], C [..., N]."""
        dt, B, C = self.x_proj(x).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        return F.softplus(self.dt_proj(dt)), B, C

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T = x.shape[1]
        xs, z = self.in_proj(x).chunk(2, dim=-1)  # [B, T, E] each
        xs = self.conv1d(xs.transpose(1, 2))[..., :T].transpose(1, 2).contiguous()  # causal conv: [B, T, E]
        xs = F.silu(xs)  # (on the strided conv view, SiLU's backward took 7x as long as on a contiguous copy)
        dt, B, C = self._ssm_params(xs)
        scan = self.scan or pick_scan(self.scan_mode, xs.device)
        device = xs.device.type  # under bf16/fp16 autocast the scan runs in the parameters' dtype (as in mamba_ssm)
        with torch.autocast(device, enabled=False) if torch.amp.is_autocast_available(device) else nullcontext():
            A = -torch.exp(self.A_log)  # (a no-op without autocast; the meta device has none)
            y = scan(xs.to(A.dtype), dt.to(A.dtype), A, B.to(A.dtype), C.to(A.dtype), self.D)  # [B, T, E]
        return self.out_proj(y * F.silu(z))  # [B, T, C]

    def init_state(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.D
        conv = p.new_zeros(batch_size, self.d_inner, self.d_conv - 1)  # last d_conv-1 conv inputs
        return conv, p.new_zeros(batch_size, self.d_inner, self.d_state)  # ssm state h [B, E, N]

    def step(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]):
        """x [B, C] -> y [B, C], next state."""
        conv, h = state
        xs, z = self.in_proj(x).chunk(2, dim=-1)  # [B, E] each
        window = torch.cat([conv, xs.unsqueeze(-1)], dim=-1)  # [B, E, d_conv]
        xs = F.silu((window * self.conv1d.weight.squeeze(1)).sum(-1) + self.conv1d.bias)  # [B, E]
        dt, B, C = self._ssm_params(xs)  # [B, E], [B, N], [B, N]
        h = torch.exp(dt.unsqueeze(-1) * -torch.exp(self.A_log)) * h + (dt * xs).unsqueeze(-1) * B.unsqueeze(1)
        y = (h * C.unsqueeze(1)).sum(-1) + self.D * xs  # [B, E]
        return self.out_proj(y * F.silu(z)), (window[..., 1:], h)


class ResidualBlock(nn.Module):
    def __init__(self, cfg: MambaConfig) -> None:
        super().__init__()
        self.norm = nn.RMSNorm(cfg.d_model, eps=1e-5)
        self.mixer = MambaBlock(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mixer(self.norm(x))

    def init_state(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mixer.init_state(batch_size)

    def step(self, x: torch.Tensor, state):
        y, state = self.mixer.step(self.norm(x), state)
        return x + y, state


class Mamba(RecurrentStack):
    linear_in_length = True  # a scan: every position costs the same (harness.components.length_sized)

    def __init__(self, cfg: MambaConfig, vocab_size: int) -> None:
        layers = [ResidualBlock(cfg) for _ in range(cfg.n_layers)]
        super().__init__(vocab_size, cfg.d_model, layers, nn.RMSNorm(cfg.d_model, eps=1e-5))
        self.cfg = cfg
        with torch.no_grad():  # pre-norm residual rescaling of the output projections (as in mamba_ssm)
            for layer in self.layers:
                layer.mixer.out_proj.weight /= math.sqrt(cfg.n_layers)


@MODELS.register("mamba", MambaConfig)
def build(cfg: MambaConfig, task: Task) -> Mamba:
    return Mamba(cfg, vocab_size=token_task(task, "model mamba").vocab_size)
