"""The one training loop: schedule, clipping, evaluation cadence, NaN guard, checkpoint, determinism."""

from dataclasses import dataclass, field

import pytest
import torch
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


class Recorder:
    def __init__(self):
        self.steps, self.evals = [], []

    def on_step(self, step, scalars):
        self.steps.append((step, scalars))

    def on_eval(self, step, metrics):
        self.evals.append(step)


def test_fit_converges_evaluates_and_checkpoints(tmp_path):
    seed_everything(0)
    m, rec = Regression(), Recorder()
    res = fit(m, batches(torch.Generator().manual_seed(0)), cfg(), [rec], checkpoint_dir=tmp_path)
    assert res.status == "finished" and res.steps == 50
    assert abs(res.metrics["w"] - 3.0) < 1e-2
    assert rec.evals == [10, 20, 30, 40, 50] and m.evals == 5
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
