"""Throughput of a run's training steps, logged once at its end (`throughput/*` metrics):

    examples_per_s   rows trained per second of training step (evaluation and checkpoints excluded)
    tokens_per_s     tokens trained per second, for methods that count them (Method.tokens_in)
    peak_memory_bytes   CUDA only: torch.cuda.max_memory_allocated over the run
    mfu              CUDA only, when the run's FLOPs per step are known (harness.estimate) and the GPU's peak
                     is in PEAK_FLOPS: achieved model FLOP/s / the GPU's dense peak at the run's precision

The first step is left out of the rates when there are more (it holds the warm-up: allocator, kernels,
torch.compile), so that they describe the steady state.
"""

from __future__ import annotations

import time

import torch

# Dense peak FLOP/s from the vendors' datasheets (SXM parts; no sparsity), as (bf16/fp16 tensor core, TF32
# tensor core, plain fp32).  [UNVERIFIED: quoted from memory of the NVIDIA datasheets, not re-checked here.]
PEAK_FLOPS: dict[str, tuple[float, float, float]] = {
    "H200": (989e12, 495e12, 67e12),
    "H100": (989e12, 495e12, 67e12),
    "A100": (312e12, 156e12, 19.5e12),
    "L40S": (362e12, 183e12, 91.6e12),
    "L4": (121e12, 60e12, 30e12),
    "A10": (125e12, 62.5e12, 31.2e12),
}


def peak_flops(device_name: str, precision: str, tf32: bool) -> float | None:
    """The dense peak of a GPU named like torch.cuda.get_device_name() ('NVIDIA H100 80GB HBM3'), or None."""
    words = device_name.upper().replace("-", " ").split()  # 'NVIDIA A100-SXM4-80GB' -> [NVIDIA, A100, SXM4, 80GB]
    for key, (half, tf, fp32) in PEAK_FLOPS.items():
        if key in words:
            return half if precision in ("bf16", "fp16") else (tf if tf32 else fp32)
    return None


def mfu(flops_per_step: float, steps_per_s: float, peak: float) -> float:
    """Model FLOPs utilization: achieved FLOP/s over peak FLOP/s."""
    return flops_per_step * steps_per_s / peak


class Throughput:
    """Times the training steps of one fit (see the module docstring)."""

    def __init__(self, device: torch.device, flops_per_step: float | None, precision: str, tf32: bool) -> None:
        self.device = device
        self.flops_per_step = flops_per_step
        self.precision, self.tf32 = precision, tf32
        self.steps = 0
        self.rows = self.tokens = 0
        self.seconds = 0.0
        self.counts_tokens = True
        self._t = 0.0
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)

    def start(self) -> None:
        self._t = time.perf_counter()

    def stop(self, rows: int, tokens: int | None) -> None:
        """End of a step of `rows` rows holding `tokens` tokens (None: the method does not count them)."""
        dt = time.perf_counter() - self._t
        self.steps += 1
        if self.steps == 1:
            self.first = (dt, rows, tokens)
        else:
            self.seconds += dt
            self.rows += rows
            self.tokens += tokens or 0
        self.counts_tokens &= tokens is not None

    def metrics(self) -> dict[str, float]:
        if self.steps == 0:
            return {}
        if self.steps == 1:
            seconds, rows, tokens = self.first
            steps = 1
        else:
            seconds, rows, tokens, steps = self.seconds, self.rows, self.tokens, self.steps - 1
        seconds = max(seconds, 1e-9)
        out = {"throughput/examples_per_s": rows / seconds, "throughput/step_seconds": seconds / steps}
        if self.counts_tokens:
            out["throughput/tokens_per_s"] = (tokens or 0) / seconds
        if self.device.type == "cuda":
            out["throughput/peak_memory_bytes"] = float(torch.cuda.max_memory_allocated(self.device))
            peak = peak_flops(torch.cuda.get_device_name(self.device), self.precision, self.tf32)
            if peak is not None and self.flops_per_step is not None:
                out["throughput/mfu"] = mfu(self.flops_per_step, steps / seconds, peak)
        return out
