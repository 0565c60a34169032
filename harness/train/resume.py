"""Resume checkpoints: everything a run needs to continue bit-identically after its process died.

A checkpoint holds the module, optimizer, schedule and grad-scaler (fp16) states, the step, and the torch (CPU and CUDA),
numpy and Python RNG states, all as tensors and plain types so that it loads with
`torch.load(..., weights_only=True)`.  It is written atomically (a temp file, fsync, os.replace): a
process killed mid-save leaves the previous checkpoint intact.  The data stream is not saved: it is
deterministic given the run's seed, so a resumed run rebuilds it and skips the `step` batches already
trained on (`TrainState.restore`), then restores the RNG states, which also undoes whatever the skip drew.
State a method keeps outside `module` (plain Python attributes such as a count of examples seen) is
saved when the method is `Stateful`: `state_dict()` returns it as tensors and plain types,
`load_state_dict()` puts it back.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

FORMAT = 2  # 2: + the grad scaler's state


@runtime_checkable
class Stateful(Protocol):
    """A method with training state outside its `module` (saved in resume checkpoints)."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def method_state(method: object) -> dict[str, Any]:
    return method.state_dict() if isinstance(method, Stateful) else {}


def rng_state() -> dict[str, Any]:
    _, keys, pos, has_gauss, cached = np.random.get_state()
    version, py_state, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": {"version": int(version), "state": torch.tensor(py_state, dtype=torch.int64), "gauss_next": gauss_next},
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(x) for x in p["state"].tolist()), p["gauss_next"]))


@dataclass
class TrainState:
    """A loaded resume checkpoint: the step it was taken after and the states to put back."""

    step: int
    module: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    schedule: dict[str, Any]
    rng: dict[str, Any]
    method: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, str] = field(default_factory=dict)
    scaler: dict[str, Any] = field(default_factory=dict)  # empty unless the run trains in fp16

    @classmethod
    def load(cls, path: Path) -> TrainState:
        raw = torch.load(path, weights_only=True, map_location="cpu")
        if raw.get("format") != FORMAT:
            raise RuntimeError(f"resume checkpoint {path} has format {raw.get('format')}, expected {FORMAT}; delete it to start over")
        return cls(raw["step"], raw["module"], raw["optimizer"], raw["schedule"], raw["rng"], raw["method"], raw["meta"],
                   raw["scaler"])

    def restore(self, method: object, module: torch.nn.Module, opt: torch.optim.Optimizer, sched: Any, batches: Iterator[Any],
                scaler: torch.amp.GradScaler | None = None) -> int:
        """Put the states back, skip the batches already trained on, then the RNGs; returns the step."""
        module.load_state_dict(self.module)
        opt.load_state_dict(self.optimizer)
        sched.load_state_dict(self.schedule)
        if scaler is not None and scaler.is_enabled():
            if not self.scaler:
                raise RuntimeError("the run trains in fp16 but its resume checkpoint holds no grad-scaler state")
            scaler.load_state_dict(self.scaler)
        for _ in range(self.step):
            next(batches)
        if isinstance(method, Stateful):
            method.load_state_dict(self.method)
        elif self.method:
            raise RuntimeError(f"the checkpoint holds method state but {type(method).__name__} cannot load it")
        set_rng_state(self.rng)
        return self.step


class Checkpointer:
    """Saves a resume checkpoint to `path` every `every` steps (None: never; not after the last step).
    `before_save` runs first (the worker flushes its buffered metrics, so that the store holds every
    metric up to the checkpoint); `meta` is stored alongside (the worker's MLflow run id)."""

    def __init__(self, path: Path, every: int | None, meta: dict[str, str] | None = None, before_save: Callable[[], None] | None = None) -> None:
        self.path, self.every = path, every
        self.meta = dict(meta or {})
        self.before_save = before_save

    def due(self, step: int, total_steps: int) -> bool:
        return self.every is not None and step % self.every == 0 and step < total_steps

    def save(self, step: int, method: object, module: torch.nn.Module, opt: torch.optim.Optimizer, sched: Any,
             scaler: torch.amp.GradScaler | None = None) -> Path:
        if self.before_save is not None:
            self.before_save()
        state = {
            "format": FORMAT,
            "step": step,
            "module": {k: v.detach().cpu() for k, v in module.state_dict().items()},
            "optimizer": opt.state_dict(),
            "schedule": sched.state_dict(),
            "rng": rng_state(),
            "method": method_state(method),
            "meta": self.meta,
            "scaler": scaler.state_dict() if scaler is not None else {},
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        return self.path

    def remove(self) -> None:
        """The run is over: drop its checkpoint (and its directory when that is left empty)."""
        self.path.unlink(missing_ok=True)
        folder = self.path.parent
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
