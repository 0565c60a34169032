import itertools
from collections import Counter

import pytest
import torch
from pydantic import ValidationError

import baselines  # noqa: F401
from baselines.tasks.arithmetic import BLANK, EQUALS, PLUS, TIMES, VOCAB, ArithmeticConfig, ArithmeticTask
from harness.components import IGNORE_INDEX, TASKS

torch.set_num_threads(1)


def task(seed: int = 0, **kw) -> ArithmeticTask:
    cfg = dict(name="arithmetic", max_digits=12, test_digits=(3, 5, 8, 12), train_size=300, test_size=20)
    cfg.update(kw)
    return TASKS.get("arithmetic").build(ArithmeticConfig(**cfg), seed)


def digit_count(x: int) -> int:
    return len(str(x))


def test_layout_add():
    t = task()
    W = 12
    assert t.vocab_size == len(VOCAB) == 14
    assert t.max_len == W + 1 + W + 1 + (W + 1)
    x, y = t.train.inputs, t.train.targets
    assert x.shape == y.shape == (300, t.max_len)
    assert torch.all(x[:, W] == PLUS) and torch.all(x[:, 2 * W + 1] == EQUALS)
    assert torch.all(x[:, 2 * W + 2 :] == BLANK)
    assert torch.all(y[:, : 2 * W + 2] == IGNORE_INDEX)
    assert torch.all((y[:, 2 * W + 2 :] >= 0) & (y[:, 2 * W + 2 :] <= 9))
    assert torch.all(x[:, :W] <= 9)


def test_layout_mul():
    t = task(op="mul", b_digits=3)
    assert t.max_len == 12 + 1 + 3 + 1 + (12 + 3)
    assert torch.all(t.train.inputs[:, 12] == TIMES)


def test_little_endian_encoding():
    t = task(max_digits=4, test_digits=(4,), train_digits=(1, 3))
    inputs, targets = t.layout.encode(123, 98)
    assert inputs == [3, 2, 1, 0, PLUS, 8, 9, 0, 0, EQUALS] + [BLANK] * 5
    assert targets == [IGNORE_INDEX] * 10 + [1, 2, 2, 0, 0]  # 221 little-endian, width 5


@pytest.mark.parametrize("op,b_digits", [("add", None), ("mul", None), ("mul", 3), ("add", 2)])
def test_rows_are_arithmetically_correct(op, b_digits):
    t = task(op=op, b_digits=b_digits)
    splits = t.eval_splits()
    assert sorted(splits) == ["len_03", "len_05", "len_08", "len_12"]
    for n, split in [(int(k[4:]), v) for k, v in splits.items()]:
        for row in range(len(split)):
            a, b, r = t.decode(split.inputs[row], split.targets[row])
            assert r == (a + b if op == "add" else a * b)
            assert digit_count(a) == n
            assert digit_count(b) == (n if b_digits is None else b_digits)
    for row in range(len(t.train)):
        a, b, r = t.decode(t.train.inputs[row], t.train.targets[row])
        assert r == (a + b if op == "add" else a * b)
        assert 1 <= digit_count(a) <= 5
        assert digit_count(b) == b_digits if b_digits is not None else 1 <= digit_count(b) <= 5


def test_train_digit_counts_cover_the_range():
    t = task(train_size=2000)
    counts = {digit_count(t.decode(t.train.inputs[i], t.train.targets[i])[0]) for i in range(len(t.train))}
    assert counts == {1, 2, 3, 4, 5}


def test_train_set_is_deterministic_per_seed():
    a, b, c = task(seed=1), task(seed=1), task(seed=2)
    assert torch.equal(a.train.inputs, b.train.inputs)
    assert not torch.equal(a.train.inputs, c.train.inputs)


def test_eval_splits_do_not_depend_on_the_run_seed():
    a, c = task(seed=1), task(seed=2)
    for name, split in a.eval_splits().items():
        assert torch.equal(split.inputs, c.eval_splits()[name].inputs)
        assert torch.equal(split.targets, c.eval_splits()[name].targets)
    other = task(seed=1, eval_seed=99)
    assert not torch.equal(a.eval_splits()["len_08"].inputs, other.eval_splits()["len_08"].inputs)


def test_priming_adds_k_rows_of_the_priming_length():
    base = task(seed=3)
    primed = task(seed=3, op="add", priming_k=7)
    assert len(primed.train) == len(base.train) + 7
    assert torch.equal(primed.train.inputs[:300], base.train.inputs)  # base rows unchanged
    for row in range(300, 307):
        a, b, r = primed.decode(primed.train.inputs[row], primed.train.targets[row])
        assert digit_count(a) == digit_count(b) == 12  # priming_digits defaults to max(test_digits)
        assert r == a + b
    mul = task(seed=3, op="mul", b_digits=3, priming_k=5, priming_digits=10)
    for row in range(300, 305):
        a, b, r = mul.decode(mul.train.inputs[row], mul.train.targets[row])
        assert (digit_count(a), digit_count(b), r) == (10, 3, a * b)


def test_max_digits_validation():
    with pytest.raises(ValidationError, match="max_digits=10 is smaller than max\\(test_digits\\)=12"):
        ArithmeticConfig(name="arithmetic", max_digits=10, test_digits=(5, 12))
    with pytest.raises(ValidationError, match="priming_digits"):
        ArithmeticConfig(name="arithmetic", max_digits=12, test_digits=(5,), priming_k=3, priming_digits=13)
    with pytest.raises(ValidationError, match="train_digits"):
        ArithmeticConfig(name="arithmetic", max_digits=4, test_digits=(4,))
    with pytest.raises(ValidationError):
        ArithmeticConfig(name="arithmetic", op="sub")
    with pytest.raises(ValidationError):
        ArithmeticConfig(name="arithmetic", priming_k=-1)


def test_train_batches_are_deterministic_given_the_generator():
    t = task()
    first = list(itertools.islice(t.train_batches(32, torch.Generator().manual_seed(5)), 12))
    again = list(itertools.islice(t.train_batches(32, torch.Generator().manual_seed(5)), 12))
    other = list(itertools.islice(t.train_batches(32, torch.Generator().manual_seed(6)), 12))
    assert all(torch.equal(a.inputs, b.inputs) for a, b in zip(first, again))
    assert not all(torch.equal(a.inputs, b.inputs) for a, b in zip(first, other))
    assert all(b.inputs.shape == (32, t.max_len) for b in first)  # 12 batches span several epochs of 300
    # the first 9 batches (288 rows) lie inside one shuffled epoch: each train row is drawn at most once
    epoch = Counter(tuple(r) for b in first[:9] for r in b.inputs.tolist())
    available = Counter(tuple(r) for r in t.train.inputs.tolist())
    assert sum(epoch.values()) == 288 and not epoch - available


def test_batch_larger_than_train_set_fails():
    with pytest.raises(ValueError, match="exceeds"):
        next(task(train_size=10).train_batches(32, torch.Generator()))
