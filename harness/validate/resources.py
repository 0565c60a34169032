"""The dry build of one run's components and what the run needs: parameters and memory.

    estimate_resources(config) -> Resources      the one function (issue 17 builds its FLOP estimate on it)

  1. the task's data, as its config declares it (`ComponentConfig.held_bytes`), against the host's memory,
     before anything is generated (`task: {train_size: 100000000000}` is refused here, naming the key);
  2. the task, built for real from its `dry_config()` (the same shapes: vocabulary, lengths, image size,
     eval splits; few examples);
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

import importlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from harness.components import METHODS, MODELS, TASKS, Method, Task, TokenTask, length_sized
from harness.spec.models import RunConfig

TINY_BATCH = 2  # rows of the dry training step
MAX_TOKENS = 2**20  # longest sequence a token task may ask for (the dry step's activations grow with it)
LAZY_IMPORT = "torch._dynamo"  # imported by some meta decompositions on first use (see _count_within_deadline)
META_SECONDS = 5.0  # a model or method that takes longer to build on the meta device is refused (e.g. 10^6 layers)
REAL_SECONDS = 60.0  # the same for the real build of a model the meta device could not size
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


IMPORT_GRACE = 0.05  # seconds: a deadline that falls inside an import is tried again this much later


def _importing(frame: Any) -> bool:
    """Whether the interrupted code is inside an import (a frame of importlib's bootstrap on its stack)."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


class _TooSlow(BaseException):
    """The meta build ran past META_SECONDS (a BaseException: a builder's `except Exception` cannot swallow it)."""


@contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Raise _TooSlow after `seconds` (SIGALRM; only in the main thread, elsewhere no limit), never inside an
    import (torch imports torch._dynamo lazily on some meta ops' first use: interrupted there, it stayed half-
    initialized and every later use failed): the deadline then waits for the import to end.  A timer already
    armed by the caller (pytest-timeout's, a user's `signal.alarm`) is kept: when it is due first, its own
    handler runs at its time, and whatever it has left is re-armed afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    outer_left, outer_interval = signal.getitimer(signal.ITIMER_REAL)
    start = time.monotonic()
    outer_due = bool(outer_left) and outer_left < seconds  # the caller's timer strikes first

    def on_alarm(signum: int, frame: object) -> None:
        nonlocal outer_due
        if _importing(frame):  # never inside an import: a module left half-initialized breaks every later use
            signal.setitimer(signal.ITIMER_REAL, IMPORT_GRACE)
            return
        if not outer_due:
            raise _TooSlow()
        outer_due = False
        signal.setitimer(signal.ITIMER_REAL, max(seconds - (time.monotonic() - start), 1e-3))  # ours, still running
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:  # the caller armed a timer with the default action: the process ends
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            signal.raise_signal(signal.SIGALRM)

    grad = torch.is_grad_enabled()  # the alarm may land between a no_grad block's enter and its try: restore it
    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, outer_left if outer_due else seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        torch.set_grad_enabled(grad)
        left = outer_left - (time.monotonic() - start)
        if outer_left and left > 0:  # the caller's timer, with what it has left
            signal.setitimer(signal.ITIMER_REAL, left, outer_interval)


class _NoRandomInit(TorchFunctionMode):
    """Random in-place initializers return their tensor untouched: on the meta device there is nothing to fill,
    and torch's first meta `normal_` alone costs seconds (it imports torch._dynamo for its decomposition)."""

    SKIP = frozenset({torch.Tensor.normal_, torch.Tensor.uniform_, torch.Tensor.random_, torch.Tensor.bernoulli_,
                      torch.Tensor.exponential_, torch.Tensor.log_normal_, torch.Tensor.cauchy_, torch.Tensor.geometric_,
                      *(getattr(torch.nn.init, f) for f in ("normal_", "uniform_", "trunc_normal_", "xavier_normal_",
                                                            "xavier_uniform_", "kaiming_normal_", "kaiming_uniform_",
                                                            "orthogonal_", "sparse_"))})

    # random factories: an uninitialized tensor of the same shape (torch's meta randn imports torch._dynamo too)
    FACTORIES = {torch.randn: torch.empty, torch.rand: torch.empty, torch.randn_like: torch.empty_like,
                 torch.rand_like: torch.empty_like}

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        if func in self.FACTORIES:
            return self.FACTORIES[func](*args, **{k: v for k, v in (kwargs or {}).items() if k != "generator"})
        if func in self.SKIP:
            return args[0] if args else next(iter((kwargs or {}).values()))  # init.normal_(tensor=...) passes it by name
        return func(*args, **(kwargs or {}))


def count_on_meta(config: RunConfig, task: Task) -> tuple[int, int, int, int] | None:
    """`_counts` of model + method built on the meta device; None when a component
    cannot be built there (it computes with its weights while it is built): counted for real then."""
    try:
        with torch.device("meta"), _NoRandomInit():
            model = MODELS.get(config.model.name).build(config.model, task)
            method = METHODS.get(config.method.name).build(config.method, model, task)
    except (NotImplementedError, RuntimeError) as e:
        if "meta" in str(e).lower():
            return None
        raise
    return _counts(method.module)


def _count_within_deadline(config: RunConfig, task: Task) -> tuple[int, int, int, int] | None:
    """count_on_meta within META_SECONDS.  Some meta ops' decompositions import torch._dynamo on first use
    (~3 s, once): when the deadline strikes before that import was ever done, the import is done outside the
    deadline and the count tried once more (an eager import would cost every suite those seconds)."""
    imported_before = LAZY_IMPORT in sys.modules
    try:
        with _deadline(META_SECONDS):
            return count_on_meta(config, task)
    except _TooSlow:
        if imported_before:
            raise
    importlib.import_module(LAZY_IMPORT)
    with _deadline(META_SECONDS):
        return count_on_meta(config, task)


def _counts(module: nn.Module) -> tuple[int, int, int, int]:
    """(parameters, trainable parameters, bytes of parameters and buffers, bytes of the trainable parameters)."""
    params = list(module.parameters())
    weights = sum(p.numel() * p.element_size() for p in params) + sum(b.numel() * b.element_size() for b in module.buffers())
    trainable = [p for p in params if p.requires_grad]
    return sum(p.numel() for p in params), sum(p.numel() for p in trainable), weights, sum(p.numel() * p.element_size() for p in trainable)


def step_activations(method: Method, task: Task, batch_size: int) -> int:
    """Bytes the tensors of one training step on a TINY_BATCH keep for backward, scaled to `batch_size`.
    The step's forward runs for real (collate, loss), so a shape error surfaces here."""
    seen: dict[Any, int] = {}
    weights = {t.untyped_storage().data_ptr() for t in [*method.module.parameters(), *method.module.buffers()]}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in weights:  # a weight saved for backward is no activation (counted once, above)
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    gen = torch.Generator().manual_seed(0)
    rows = min(TINY_BATCH, batch_size)
    batch = method.collate(next(iter(task.train_batches(rows, gen))), torch.Generator().manual_seed(1))
    batch, scale = length_sized(method.module, batch)  # a recurrent model: a slice of the sequence, scaled back
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        method.loss(batch)
    return int(sum(seen.values()) * scale) * batch_size // rows


def check_data(config: RunConfig, host: int) -> int:
    """The task's declared data against the host's memory; returns its bytes."""
    held = config.task.held_bytes()
    total = sum(held.values())
    if total > host:
        key = max(held, key=held.get)
        raise BuildError(("task", key), f"the task would hold {gib(total)} of data ({gib(held[key])} from '{key}'); "
                                        f"this machine has {gib(host)}")
    return total


def check_lengths(config: RunConfig, task: Task) -> None:
    """A token task's sequences: at most MAX_TOKENS long, and a batch of them fits the host."""
    if not isinstance(task, TokenTask):
        return
    if task.max_len > MAX_TOKENS:
        raise BuildError(blame(config, ("task",)), f"the task's sequences are {task.max_len:,} tokens long (more than "
                                                   f"{MAX_TOKENS:,}): activations grow with the length")
    rows = config.training.batch_size * task.max_len * 2 * 8  # int64 inputs and targets
    if rows > host_memory():
        raise BuildError(("training", "batch_size"), f"one batch of {config.training.batch_size} rows of {task.max_len} tokens "
                                                     f"needs {gib(rows)}; this machine has {gib(host_memory())}")


def check_fits(config: RunConfig, r: Resources, keys: tuple[str, ...] = ("model", "method")) -> None:
    if r.device_bytes > r.budget_bytes:
        where = "a GPU slot" if r.device == "cuda" else "this machine"
        raise BuildError(blame(config, keys), f"a run needs about {gib(r.device_bytes)} ({r.params:.3g} parameters: "
                         f"{gib(r.weight_bytes + r.state_bytes)} with gradients and optimizer state, {gib(r.activation_bytes)} "
                         f"of activations at batch size {config.training.micro_batch_size or config.training.batch_size}); {where} has "
                         f"{gib(r.budget_bytes)}")


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
        if task is None:  # the task's dry config: its shapes, few examples
            task = _build(TASKS, "task", config.model_copy(update={"task": config.task.dry_config()}), config.seed)
        device, budget = device_budget(config, slots_per_gpu)
        states = 1 + _states_per_param(config)
        check_lengths(config, task)
        try:
            counted = _count_within_deadline(config, task)
        except _TooSlow:
            raise BuildError(blame(config, ("model", "method")), f"building model '{config.model.name}' and method "
                             f"'{config.method.name}' took over {META_SECONDS:g} s even on the meta device (no memory): too large") from None
        except Exception:  # noqa: BLE001  (the real build below reports it, with the component named)
            counted = None
        if counted is not None:
            params, trainable, weights, trained = counted
            check_fits(config, Resources(params, trainable, weights, states * trained, 0, data, device, budget, host))
        try:  # unsized (the meta build failed): the real build is bounded in time instead
            with _deadline(REAL_SECONDS) if counted is None else nullcontext():
                model = _build(MODELS, "model", config, task)
                method = _build(METHODS, "method", config, model, task)
        except _TooSlow:
            raise BuildError(blame(config, ("model", "method")), f"building model '{config.model.name}' and method "
                             f"'{config.method.name}' took over {REAL_SECONDS:g} s on the CPU: too large") from None
        params, trainable, weights, trained = _counts(method.module)
        try:
            activations = step_activations(method, task, config.training.micro_batch_size or config.training.batch_size)
        except Exception as e:  # noqa: BLE001
            raise BuildError(("method", "name"), f"a training step of task '{config.task.name}', model '{config.model.name}' "
                             f"and method '{config.method.name}' fails: {type(e).__name__}: {e}") from None
    resources = Resources(params, trainable, weights, states * trained, activations, data, device, budget, host)
    check_fits(config, resources)
    declared = METHODS.get(config.method.name).metrics(config.method, task)
    return DryBuild(task, resources, frozenset([*declared, *harness_metrics(config)]))


def estimate_resources(config: RunConfig, slots_per_gpu: int = 1) -> Resources:
    """Parameter count and memory of one run of `config` (module docstring); raises BuildError."""
    return dry_build(config, slots_per_gpu).resources


def harness_metrics(config: RunConfig) -> list[str]:
    """What the loop and the runner log for every run besides the method's own (harness.train.fit's step
    scalars under train/, harness.runner.run_one's totals)."""
    steps = ["train/loss", "train/lr", *(["train/grad_norm"] if config.training.grad_clip is not None else [])]
    return [*(steps if config.training.steps > 0 else []), "time/train_seconds", "n_params", "train/diverged_at_step"]
