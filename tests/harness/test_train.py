"""The one training loop: schedule, clipping, evaluation cadence, NaN guard, checkpoint, determinism."""

from dataclasses import dataclass, field

import pytest
import torch
from conftest import Recorder
from torch import nn

from harness.components import Batch, LossOutput
from harness.spec.models import OptimizerConfig, RunConfig
from harness.train import fit, seed_everything
from harness.train.loop import load_checkpoint
from harness.train.optim import lr_factor


@dataclass
class Regression:
    """A tiny method: fit y = 3x with a linear layer; evaluation reports the weight."""

    module: nn.Module = field(default_factory=lambda: nn.Linear(1, 1, bias=False))
    evals: int = 0
    after: list[tuple[int, int]] = field(default_factory=list)

    def collate(self, batch: Batch, generator: torch.Generator) -> Batch:
        return batch

    def after_step(self, step: int, total_steps: int) -> None:
        self.after.append((step, total_steps))

    def loss(self, batch: Batch) -> LossOutput:
        x = batch.inputs.float()
        return LossOutput(((self.module(x) - 3 * x) ** 2).mean(), {"w": float(self.module.weight.detach())})

    def evaluate(self) -> dict[str, float]:
        self.evals += 1
        return {"w": float(self.module.weight.detach())}


def batches(gen: torch.Generator):
    while True:
        x = torch.randn(16, 1, generator=gen)
        yield Batch(x, x)


def cfg(**training) -> RunConfig:
    from harness.spec import validate_config

    raw = {
        "task": {"name": "arithmetic", "train_digits": [1, 2], "test_digits": [2], "max_digits": 2},
        "model": {"name": "transformer"},
        "method": {"name": "supervised"},
        "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.0, "schedule": "constant"},
        "training": {"steps": 50, "batch_size": 16, **training},
        "evaluation": {"every": 10},
    }
    return validate_config(raw, lambda p: None)


def test_fit_converges_evaluates_and_checkpoints(tmp_path):
    seed_everything(0)
    m, rec = Regression(), Recorder()
    res = fit(m, batches(torch.Generator().manual_seed(0)), cfg(), [rec], checkpoint_dir=tmp_path)
    assert res.status == "finished" and res.steps == 50
    assert abs(res.metrics["w"] - 3.0) < 1e-2
    assert rec.eval_steps == [10, 20, 30, 40, 50] and m.evals == 5
    assert m.after == [(s, 50) for s in range(1, 51)]  # after every optimizer step, with the run's length
    assert [s for s, _ in rec.steps] == list(range(1, 51))
    assert {"loss", "lr", "grad_norm", "w"} <= set(rec.steps[0][1])
    fresh = nn.Linear(1, 1, bias=False)
    load_checkpoint(fresh, res.checkpoint)  # weights_only=True inside
    assert torch.equal(fresh.weight, m.module.weight)


def test_fit_is_deterministic_per_seed():
    def once(seed):
        seed_everything(seed)
        m = Regression()
        fit(m, batches(torch.Generator().manual_seed(seed)), cfg(steps=5))
        return m.module.weight.detach().clone()

    assert torch.equal(once(1), once(1))
    assert not torch.equal(once(1), once(2))


def test_nan_loss_stops_run_as_diverged():
    rec = Recorder()
    res = fit(Regression(), batches(torch.Generator().manual_seed(0)), cfg(fault={"kind": "nan", "at_step": 7}), [rec])
    assert res.status == "diverged" and res.steps == 7
    assert rec.steps[-1][0] == 7 and rec.steps[-1][1]["loss"] != rec.steps[-1][1]["loss"]  # NaN


def test_grad_clip_bounds_update():
    m = Regression()
    with torch.no_grad():
        m.module.weight.fill_(1000.0)
    rec = Recorder()
    fit(m, batches(torch.Generator().manual_seed(0)), cfg(steps=1, grad_clip=0.5), [rec])
    assert rec.steps[0][1]["grad_norm"] > 0.5
    assert abs(float(m.module.weight.detach()) - 1000.0) <= 0.1 * 0.5 + 1e-6  # lr * clip


@pytest.mark.parametrize("schedule", ["cosine", "linear", "constant"])
def test_lr_schedule_warmup_then_decay(schedule):
    c = OptimizerConfig(schedule=schedule, warmup_steps=10, min_lr_ratio=0.1)
    f = [lr_factor(s, 100, c) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a <= b + 1e-12 for a, b in zip(f[:10], f[1:10]))
    if schedule == "constant":
        assert f[-1] == 1.0
    else:
        assert all(a >= b - 1e-12 for a, b in zip(f[10:], f[11:])) and f[-1] == pytest.approx(0.1, abs=0.02)


def test_sequence_model_on_a_non_token_task_is_a_clear_error():
    from harness.components import MODELS

    class NotTokens:
        def train_batches(self, batch_size, generator):
            return iter(())

        def eval_splits(self):
            return {}

    entry = MODELS.get("transformer")
    with pytest.raises(TypeError, match="model transformer needs a token-sequence task; NotTokens"):
        entry.build(entry.config(name="transformer"), NotTokens())


@dataclass
class Noisy(Regression):
    """Regression through dropout, plus numpy and Python random draws: every RNG the loop restores; and
    a count of examples seen kept outside the module (saved through `state_dict`)."""

    module: nn.Module = field(default_factory=lambda: nn.Sequential(nn.Linear(1, 8), nn.Dropout(0.3), nn.Linear(8, 1)))
    seen: int = 0

    def state_dict(self) -> dict[str, int]:
        return {"seen": self.seen}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.seen = state["seen"]

    def loss(self, batch: Batch) -> LossOutput:
        import random

        import numpy as np

        x = batch.inputs.float()
        self.seen += len(batch)
        noise = float(np.random.randn()) * 1e-3 + random.random() * 1e-3
        return LossOutput(((self.module(x) - 3 * x) ** 2).mean() + noise)

    def evaluate(self) -> dict[str, float]:
        with torch.no_grad():
            return {"y1": float(self.module(torch.ones(1, 1))), "seen": float(self.seen)}


def noisy_batches(seed: int, draws: list[int]):
    """Like `batches`, also drawing from the global torch RNG (a collate that samples masks would)."""
    gen = torch.Generator().manual_seed(seed)
    while True:
        draws.append(int(torch.randint(0, 1000, ())))
        x = torch.randn(16, 1, generator=gen)
        yield Batch(x, x)


def test_resume_from_checkpoint_is_bit_identical(tmp_path):
    from harness.train.loop import InjectedFault
    from harness.train.resume import Checkpointer, TrainState

    c = dict(steps=30, checkpoint_every=10)
    optim = {"name": "adamw", "lr": 0.01, "warmup_steps": 5, "schedule": "cosine"}

    def run(training, path, resume=None):
        seed_everything(3)
        m, rec = Noisy(), Recorder()
        conf = cfg(**training).model_copy(update={"optimizer": OptimizerConfig(**optim)})
        ckpt = Checkpointer(path, 10, {"who": "test"})
        try:
            res = fit(m, noisy_batches(3, []), conf, [rec], checkpointer=ckpt, resume=resume)
        except InjectedFault:
            res = None
        return m, rec, res

    whole, rec_whole, res_whole = run(c, tmp_path / "a" / "resume.pt")
    assert (tmp_path / "a" / "resume.pt").exists()  # saved at step 20, the last one before the end
    assert TrainState.load(tmp_path / "a" / "resume.pt").step == 20

    path = tmp_path / "b" / "resume.pt"
    _, rec_cut, res_cut = run({**c, "fault": {"kind": "raise", "at_step": 25}}, path)
    assert res_cut is None and [s for s, _ in rec_cut.steps][-1] == 24
    state = TrainState.load(path)  # torch.load(weights_only=True) inside
    assert state.step == 20 and state.meta == {"who": "test"}
    resumed, rec_resumed, res_resumed = run(c, tmp_path / "c" / "resume.pt", resume=state)

    assert [s for s, _ in rec_resumed.steps] == list(range(21, 31))
    assert rec_resumed.steps == rec_whole.steps[20:]  # losses, lrs, grad norms: exactly equal
    for a, b in zip(whole.module.state_dict().values(), resumed.module.state_dict().values()):
        assert torch.equal(a, b)
    assert res_resumed.metrics == res_whole.metrics and res_resumed.steps == 30
    assert res_resumed.metrics["seen"] == 30 * 16  # the method's own state came back too
    # the comparison is sensitive to the RNG states: another torch RNG state gives another continuation
    seed_everything(3)
    m = Noisy()
    conf = cfg(**c).model_copy(update={"optimizer": OptimizerConfig(**optim)})
    state.rng = TrainState.load(tmp_path / "a" / "resume.pt").rng | {"torch": torch.manual_seed(99).get_state()}
    fit(m, noisy_batches(3, []), conf, resume=state)
    assert not torch.equal(m.module[0].weight, whole.module[0].weight)


def test_checkpoint_write_is_atomic_and_removed_at_the_end(tmp_path):
    from harness.train.resume import Checkpointer, TrainState

    ckpt = Checkpointer(tmp_path / "run" / "resume.pt", 5)
    m = Regression()
    fit(m, batches(torch.Generator().manual_seed(0)), cfg(steps=12), checkpointer=ckpt)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["resume.pt"]  # no temp file left
    assert TrainState.load(ckpt.path).step == 10
    ckpt.remove()
    assert not (tmp_path / "run").exists()
