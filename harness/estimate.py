"""What one run costs, without training it: `estimate(cfg) -> Estimate(params, flops_per_step, memory_bytes)`.

The task is built for real (on CPU, cut down to what one training batch needs: `ComponentConfig.dry_config`;
one batch is drawn from it), the model and method on the meta device (no memory, no compute: a
150M-parameter model costs nothing to build).  One micro-batch's
loss and backward are then traced on meta tensors:

    params          every parameter of the method's module (weights of frozen parts, e.g. an EMA target,
                    are in `module` too when the method keeps them there)
    flops_per_step  forward + backward FLOPs of the matmuls and convolutions of one optimizer step (all its
                    micro-batches), counted by torch.utils.flop_counter; elementwise ops (activations, norms,
                    softmax, a recurrent scan's updates) are not counted, as is usual for MFU.  On meta an
                    nn.LSTM decomposes into its gate matmuls (on CPU it is one fused kernel the counter
                    cannot see into, which is why the trace runs on meta)
    memory_bytes    weights + gradients + optimizer state (the parameters' dtype) + the activations one micro-batch saves
                    for backward (each saved tensor counted once, parameters excluded), in fp32: under
                    bf16/fp16 autocast the matmul outputs are half as large, so read it as an upper bound
                    of the steady state (allocator slack, transient buffers and the data set not included)

`.item()` on a meta tensor (a method's logged accuracy, an examples count) reads 0 during the trace.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from harness.components import METHODS, MODELS, TASKS, length_sized
from harness.spec.models import RunConfig
from harness.train.precision import micro_batches

META = torch.device("meta")
OPTIMIZER_STATES = {"adamw": 2, "adam": 2, "sgd": 1}  # tensors per parameter (moments / momentum), in its dtype


class Estimate(NamedTuple):
    params: int
    flops_per_step: float
    memory_bytes: int

    def total_flops(self, steps: int) -> float:
        return self.flops_per_step * steps


class _ScalarsReadZero(TorchDispatchMode):
    """`.item()` / `bool()` of a meta tensor returns 0 instead of raising (module docstring)."""

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        if func is torch.ops.aten._local_scalar_dense.default and args[0].is_meta:
            return 0
        return func(*args, **(kwargs or {}))


class _SavedBytes:
    """Bytes of the tensors autograd saves for backward (each storage base once, parameters excluded)."""

    def __init__(self, params: set[int]) -> None:
        self.params, self.seen, self.bytes = params, set(), 0

    def pack(self, t: torch.Tensor) -> torch.Tensor:
        base = t if t._base is None else t._base
        if id(base) not in self.params and id(base) not in self.seen:
            self.seen.add(id(base))
            self.bytes += base.nelement() * base.element_size()
        return t


def shapes(batch: Any) -> tuple:
    """The shapes and dtypes of the tensors a batch holds (its fields, recursively): what a trace depends on."""
    if isinstance(batch, torch.Tensor):
        return (tuple(batch.shape), str(batch.dtype))
    return tuple((k, shapes(v)) for k, v in sorted(vars(batch).items()) if isinstance(v, torch.Tensor) or hasattr(v, "__dict__"))


class Cache:
    """Estimates of one suite: tasks by (cut-down) config, traces by what they depend on (the model, the
    method, the optimizer, the micro-batching and the batch's shapes), so that configurations differing only
    in data values (e.g. a priming count, a training-set size) are traced once."""

    def __init__(self) -> None:
        self.tasks: dict[str, Any] = {}
        self.traces: dict[tuple, Estimate] = {}


def estimate(cfg: RunConfig, cache: Cache | None = None) -> Estimate:
    """See the module docstring.  The task is built from `cfg.task.dry_config(batch_size)` (the same
    batch shapes, cheap to build).  A stage run is estimated as its own architecture (its source's weights
    do not change the cost of a step).  A component that cannot be built or run on the meta device (one
    that reads its own values while it is built, e.g. the deep linear networks) is traced on CPU instead.
    On meta every elementwise op runs through a Python reference (~0.1 ms), so a recurrent model over long
    rows (an LSTM over 2048 steps) takes minutes to trace: `cache` keeps such traces for the suite."""
    cache = cache or Cache()
    sized = cfg.task.dry_config(cfg.training.batch_size)
    key = sized.model_dump_json()
    if key not in cache.tasks:
        cache.tasks[key] = TASKS.get(cfg.task.name).build(sized, cfg.seed)
    task = cache.tasks[key]
    batch = next(task.train_batches(cfg.training.batch_size, torch.Generator().manual_seed(cfg.seed)))
    trace_key = (cfg.model.model_dump_json(), cfg.method.model_dump_json(), cfg.optimizer.name, cfg.training.micro_batch_size,
                 shapes(batch))
    if trace_key not in cache.traces:
        try:
            cache.traces[trace_key] = _trace(cfg, task, batch, META)
        except NotImplementedError:  # "Cannot copy out of meta tensor": the component needs real values
            cache.traces[trace_key] = _trace(cfg, task, batch, torch.device("cpu"))
    return cache.traces[trace_key]


def _trace(cfg: RunConfig, task: Any, batch: Any, device: torch.device) -> Estimate:
    with _ScalarsReadZero(), torch.device(device):
        model = MODELS.get(cfg.model.name).build(cfg.model, task)
        method = METHODS.get(cfg.method.name).build(cfg.method, model, task)
    params = list(method.module.parameters())
    n_params = sum(p.numel() for p in params)
    weight_bytes = sum(p.numel() * p.element_size() for p in params)
    trained_bytes = sum(p.numel() * p.element_size() for p in params if p.requires_grad)
    parts = list(micro_batches(method, method.collate(batch, torch.Generator().manual_seed(cfg.seed + 1)),
                               cfg.training.micro_batch_size))
    part, scale = length_sized(method.module, parts[0][0])  # a recurrent model: traced on a slice of the sequence
    flops = FlopCounterMode(display=False)
    saved = _SavedBytes({id(p) for p in params})
    with _ScalarsReadZero(), flops:
        with torch.autograd.graph.saved_tensors_hooks(saved.pack, lambda t: t):
            loss = method.loss(part.to(device)).loss
        if loss.requires_grad:
            loss.backward()
    per_step = float(flops.get_total_flops()) * scale * len(parts)  # the micro-batches of a step have equal shapes
    state = weight_bytes + trained_bytes * (1 + OPTIMIZER_STATES[cfg.optimizer.name])  # weights, grads, moments
    return Estimate(n_params, per_step, state + int(saved.bytes * scale))
