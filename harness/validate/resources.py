"""The dry build of one run's components and what the run needs: parameters and memory.

    estimate_resources(config) -> Resources      the one function (issue 17 builds its FLOP estimate on it)

  1. the task's data, as its config declares it (`ComponentConfig.held_bytes`), against the host's memory,
     before anything is generated (`task: {train_size: 100000000000}` is refused here, naming the key);
  2. the task, built for real (its shapes: vocabulary, lengths, image size, eval splits);
  3. the model and the method on torch's meta device: every parameter counted, nothing allocated
     (`model: {d_model: 1048576}`, 4e12 parameters, is refused here, naming the key that grew it);
  4. model and method built for real on the CPU and the forward pass of one training step on a tiny batch
     (collate, loss): an incompatible pairing or a shape error fails here; the tensors the step saves for
     backward are summed and scaled to the run's batch size (the activation memory).

Memory a run needs on its device = weights + gradients + optimizer state (2 per trainable parameter for
Adam/AdamW, 1 for SGD with momentum) + activations (+ the task's data, on the CPU).  The budget is the
machine's memory (CPU) or the GPU's divided by `slots_per_gpu` (runs sharing a GPU).  A failure is a
`BuildError` naming the config path it comes from; harness.validate turns it into `file:line: key: ...`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from harness.components import METHODS, MODELS, TASKS, Method, Task
from harness.spec.models import RunConfig

TINY_BATCH = 2  # rows of the dry training step
GIB = 2**30
FAKE_GPU_MEMORY_ENV = "HARNESS_FAKE_GPU_MEMORY"  # tests only: bytes of a pretend GPU (runs are placed on it)


class BuildError(Exception):
    """A run's components cannot be built, run a step, or fit: `path` is the config path to blame."""

    def __init__(self, path: tuple[str, ...], message: str) -> None:
        super().__init__(message)
        self.path, self.message = path, " ".join(message.split())


@dataclass(frozen=True)
class Resources:
    """What one run needs (bytes) and where it runs."""

    params: int  # every parameter of the method's module (trainable and frozen, e.g. an EMA target)
    trainable: int
    weight_bytes: int  # parameters and buffers
    state_bytes: int  # gradients and optimizer state
    activation_bytes: int  # saved for backward at the run's batch size
    data_bytes: int  # the task's data (host memory)
    device: str  # "cpu" or "cuda"
    budget_bytes: int  # memory of the device (a GPU: per slot)
    host_bytes: int  # memory of the machine

    @property
    def device_bytes(self) -> int:
        on_device = self.weight_bytes + self.state_bytes + self.activation_bytes
        return on_device + (self.data_bytes if self.device == "cpu" else 0)


def gib(n: float) -> str:
    return f"{n / GIB:.3g} GiB"


def host_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def device_budget(config: RunConfig, slots_per_gpu: int) -> tuple[str, int]:
    """(device, bytes) a run of `config` may use: a GPU slot's share when it runs on CUDA, else the host's."""
    fake = os.environ.get(FAKE_GPU_MEMORY_ENV)
    want = config.training.device
    if want != "cpu" and (fake is not None or (want == "cuda" or torch.cuda.is_available())):
        total = int(fake) if fake is not None else (torch.cuda.get_device_properties(0).total_memory if torch.cuda.is_available() else 0)
        if total:
            return "cuda", total // slots_per_gpu
    return "cpu", host_memory()


def _states_per_param(config: RunConfig) -> int:
    opt = config.optimizer
    return {"adamw": 2, "adam": 2}.get(opt.name, 1 if opt.momentum > 0 else 0)


def blame(config: RunConfig, keys: tuple[str, ...]) -> tuple[str, ...]:
    """The config path most likely to have grown a component: of the integer parameters written for it (not
    left at their default), the one furthest above its default; else the component itself."""
    best, ratio = None, 1.0
    for key in keys:
        comp = getattr(config, key)
        for name in comp.model_fields_set:
            value, default = getattr(comp, name), type(comp).model_fields[name].default
            if isinstance(value, int) and not isinstance(value, bool) and isinstance(default, int) and value > max(default, 1) * ratio:
                best, ratio = (key, name), value / max(default, 1)
    return best or (keys[-1],)


def count_on_meta(config: RunConfig, task: Task) -> tuple[int, int, int] | None:
    """(params, trainable, weight bytes) of model + method built on the meta device; None when a component
    cannot be built there (it computes with its weights while it is built): counted for real then."""
    try:
        with torch.device("meta"):
            model = MODELS.get(config.model.name).build(config.model, task)
            method = METHODS.get(config.method.name).build(config.method, model, task)
    except (NotImplementedError, RuntimeError) as e:
        if "meta" in str(e).lower():
            return None
        raise
    return _counts(method.module)


def _counts(module: nn.Module) -> tuple[int, int, int]:
    params = list(module.parameters())
    weights = sum(p.numel() * p.element_size() for p in params) + sum(b.numel() * b.element_size() for b in module.buffers())
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad), weights


def step_activations(method: Method, task: Task, batch_size: int) -> int:
    """Bytes the tensors of one training step on a TINY_BATCH keep for backward, scaled to `batch_size`.
    The step's forward runs for real (collate, loss), so a shape error surfaces here."""
    seen: dict[Any, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if t.device.type != "meta":
            storage = t.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    gen = torch.Generator().manual_seed(0)
    rows = min(TINY_BATCH, batch_size)
    batch = method.collate(next(iter(task.train_batches(rows, gen))), torch.Generator().manual_seed(1))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        method.loss(batch)
    return sum(seen.values()) * batch_size // rows


def check_data(config: RunConfig, host: int) -> int:
    """The task's declared data against the host's memory; returns its bytes."""
    held = config.task.held_bytes()
    total = sum(held.values())
    if total > host:
        key = max(held, key=held.get)
        raise BuildError(("task", key), f"the task would hold {gib(total)} of data ({gib(held[key])} from '{key}'); "
                                        f"this machine has {gib(host)}")
    return total


def check_fits(config: RunConfig, r: Resources, keys: tuple[str, ...] = ("model", "method")) -> None:
    if r.device_bytes > r.budget_bytes:
        where = "a GPU slot" if r.device == "cuda" else "this machine"
        raise BuildError(blame(config, keys), f"a run needs about {gib(r.device_bytes)} ({r.params:.3g} parameters: "
                         f"{gib(r.weight_bytes + r.state_bytes)} with gradients and optimizer state, {gib(r.activation_bytes)} "
                         f"of activations at batch size {config.training.batch_size}); {where} has {gib(r.budget_bytes)}")


def _build(registry, key: str, config: RunConfig, *args: Any) -> Any:
    cfg = getattr(config, key)
    try:
        return registry.get(cfg.name).build(cfg, *args)
    except Exception as e:  # noqa: BLE001  (any builder error is the suite's: reported with its file:line)
        names = f"task '{config.task.name}'" + (f", model '{config.model.name}'" if key == "method" else "")
        raise BuildError((key, "name"), f"{key} '{cfg.name}' cannot be built" + (f" on {names}" if key != "task" else "")
                         + f": {type(e).__name__}: {e}") from None


@dataclass
class DryBuild:
    """A run's components built once (module docstring): its task, its resources and its metric names."""

    task: Task
    resources: Resources
    metrics: frozenset[str]


def dry_build(config: RunConfig, slots_per_gpu: int = 1, task: Task | None = None) -> DryBuild:
    """Steps 1-4 of the module docstring for `config` (`task`: one built already from `config.task`)."""
    host = host_memory()
    data = check_data(config, host)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        if task is None:
            task = _build(TASKS, "task", config, config.seed)
        device, budget = device_budget(config, slots_per_gpu)
        states = 1 + _states_per_param(config)
        try:
            counted = count_on_meta(config, task)
        except Exception:  # noqa: BLE001  (the real build below reports it, with the component named)
            counted = None
        if counted is not None:
            params, trainable, weights = counted
            check_fits(config, Resources(params, trainable, weights, trainable * states * weights // max(params, 1), 0, data,
                                         device, budget, host))
        model = _build(MODELS, "model", config, task)
        method = _build(METHODS, "method", config, model, task)
        params, trainable, weights = _counts(method.module)
        try:
            activations = step_activations(method, task, config.training.batch_size)
        except Exception as e:  # noqa: BLE001
            raise BuildError(("method", "name"), f"a training step of task '{config.task.name}', model '{config.model.name}' "
                             f"and method '{config.method.name}' fails: {type(e).__name__}: {e}") from None
    resources = Resources(params, trainable, weights, trainable * states * weights // max(params, 1), activations, data,
                          device, budget, host)
    check_fits(config, resources)
    declared = METHODS.get(config.method.name).metrics(config.method, task)
    return DryBuild(task, resources, frozenset([*declared, *harness_metrics(config)]))


def estimate_resources(config: RunConfig, slots_per_gpu: int = 1) -> Resources:
    """Parameter count and memory of one run of `config` (module docstring); raises BuildError."""
    return dry_build(config, slots_per_gpu).resources


def harness_metrics(config: RunConfig) -> list[str]:
    """What the loop and the runner log for every run besides the method's own (harness.train.fit's step
    scalars under train/, harness.runner.run_one's totals)."""
    return ["train/loss", "train/lr", *(["train/grad_norm"] if config.training.grad_clip is not None else []),
            "time/train_seconds", "n_params", "train/diverged_at_step"]
