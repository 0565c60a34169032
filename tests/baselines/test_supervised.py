import torch
from torch import nn

import baselines  # noqa: F401
from baselines.methods.supervised import SupervisedConfig
from baselines.tasks.arithmetic import ArithmeticConfig, ArithmeticTask
from harness.components import IGNORE_INDEX, METHODS, Batch

torch.set_num_threads(1)


class TinyTask:
    vocab_size = 5
    max_len = 4

    def __init__(self, splits):
        self._splits = splits

    def train_batches(self, batch_size, generator):
        raise NotImplementedError

    def eval_splits(self):
        return self._splits

    @staticmethod
    def examples_in(batch):
        return 3 * len(batch)  # pretend three examples are packed per row


class FixedLogits(nn.Module):
    """Returns the same logits for any input of the right batch size."""

    def __init__(self, logits):
        super().__init__()
        self.logits = nn.Parameter(logits)

    def forward(self, inputs):
        return self.logits[: inputs.shape[0]]


def build(model, task, **kw):
    return METHODS.get("supervised").build(SupervisedConfig(name="supervised", **kw), model, task)


def test_loss_ignores_ignored_positions():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 5)
    targets = torch.tensor([[IGNORE_INDEX, 1, IGNORE_INDEX, 3], [IGNORE_INDEX, IGNORE_INDEX, 0, 4]])
    method = build(FixedLogits(logits.clone()), TinyTask({}))
    out = method.loss(Batch(torch.zeros(2, 4, dtype=torch.long), targets))
    scored = targets != IGNORE_INDEX
    expected = nn.functional.cross_entropy(logits[scored], targets[scored])
    torch.testing.assert_close(out.loss, expected)
    # changing logits at ignored positions changes nothing
    other = logits.clone()
    other[~scored] = 100.0
    out2 = build(FixedLogits(other), TinyTask({})).loss(Batch(torch.zeros(2, 4, dtype=torch.long), targets))
    torch.testing.assert_close(out2.loss, out.loss)
    predicted = logits.argmax(-1)
    assert out.metrics["token_acc"] == (predicted[scored] == targets[scored]).float().mean().item()
    out.loss.backward()
    assert method.module.logits.grad is not None
    assert method.evaluate()["examples_seen"] == 6  # counted through the task, packed examples singly


class Oracle(nn.Module):
    """Looks the right answer up in the task's eval sets (a perfect model)."""

    def __init__(self, task):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))
        self.answers = {}
        for split in task.eval_splits().values():
            for x, y in zip(split.inputs, split.targets):
                self.answers[tuple(x.tolist())] = y
        self.vocab_size = task.vocab_size
        self.seen_training = []

    def forward(self, inputs):
        self.seen_training.append(self.training)
        targets = torch.stack([self.answers[tuple(x.tolist())] for x in inputs])  # [B, T]
        logits = torch.zeros(*targets.shape, self.vocab_size)
        logits.scatter_(-1, targets.clamp(min=0).unsqueeze(-1), 10.0)
        return logits + 0 * self.dummy


def test_evaluate_perfect_model():
    task = ArithmeticTask(
        ArithmeticConfig(name="arithmetic", max_digits=8, test_digits=(3, 8), train_size=10, test_size=30), seed=0
    )
    oracle = Oracle(task)
    method = build(oracle, task, eval_batch_size=7)  # several eval batches per split
    oracle.train()
    metrics = method.evaluate()
    assert set(metrics) == {"examples_seen"} | {f"{m}/{s}" for m in ("exact", "token_acc", "loss", "items/exact") for s in ("len_03", "len_08")}
    assert metrics["items/exact/len_03"] == len(task.eval_splits()["len_03"])  # exact match: a proportion of the rows
    assert metrics["exact/len_03"] == metrics["exact/len_08"] == 1.0
    assert metrics["token_acc/len_08"] == 1.0
    assert metrics["loss/len_08"] < 1e-3
    assert oracle.seen_training and not any(oracle.seen_training)  # evaluated in eval mode
    assert oracle.training  # train mode restored


def test_evaluate_counts_partially_right_rows():
    targets = torch.tensor([[IGNORE_INDEX, 1, 2, IGNORE_INDEX], [IGNORE_INDEX, 3, 4, IGNORE_INDEX]])
    logits = torch.zeros(2, 4, 5)
    logits[0, 1, 1] = logits[0, 2, 2] = 5.0  # row 0 fully right
    logits[1, 1, 3] = logits[1, 2, 0] = 5.0  # row 1 half right
    task = TinyTask({"s": Batch(torch.zeros(2, 4, dtype=torch.long), targets)})
    metrics = build(FixedLogits(logits), task).evaluate()
    assert metrics["exact/s"] == 0.5
    assert metrics["token_acc/s"] == 0.75
