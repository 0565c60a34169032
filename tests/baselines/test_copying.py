import itertools

import pytest
import torch
from pydantic import ValidationError

import baselines  # noqa: F401
from baselines.tasks.copying import BOS, EOS, PAD, SEP, VOCAB, CopyingConfig, CopyingTask
from harness.components import IGNORE_INDEX, TASKS

torch.set_num_threads(1)

MODES = ["copy", "dup_ngram", "lookup_prefix", "lookup_suffix"]


def task(seed: int = 0, **kw) -> CopyingTask:
    cfg = dict(name="copy", train_len=(8, 16), test_lengths=(10, 25), context_len=80, test_size=30)
    cfg.update(kw)
    return TASKS.get("copy").build(CopyingConfig(**cfg), seed)


def batches(t: CopyingTask, gen_seed: int, n: int = 3, batch_size: int = 8):
    return list(itertools.islice(t.train_batches(batch_size, torch.Generator().manual_seed(gen_seed)), n))


def examples(row: torch.Tensor) -> list[str]:
    """The examples of a row, as text, without padding."""
    text = CopyingTask.decode(row).rstrip("_")
    assert text.startswith("$") and text.endswith(".")
    return ["$" + e for e in text.split("$")[1:]]


def answer_span(inputs_row: torch.Tensor, targets_row: torch.Tensor) -> list[tuple[int, int]]:
    """Every (t, target) with a loss."""
    return [(t, y) for t, y in enumerate(targets_row.tolist()) if y != IGNORE_INDEX]


def test_vocab_and_sizes():
    t = task()
    assert t.vocab_size == len(VOCAB) == 30
    assert (VOCAB[BOS], VOCAB[SEP], VOCAB[EOS], VOCAB[PAD]) == ("$", "|", ".", "_")
    assert t.max_len == max(80, 2 * 25 + 3)
    assert task(test_lengths=(10, 60)).max_len == 123
    assert task(mode="lookup_prefix", test_lengths=(40,)).max_len == 80
    splits = t.eval_splits()
    assert list(splits) == ["len_10", "len_25"]
    assert splits["len_25"].inputs.shape == splits["len_25"].targets.shape == (30, 53)


@pytest.mark.parametrize("mode", MODES)
def test_train_stream_is_deterministic_per_generator(mode):
    t = task(mode=mode)
    a, b, c = batches(t, 1), batches(t, 1), batches(t, 2)
    for x, y in zip(a, b):
        assert torch.equal(x.inputs, y.inputs) and torch.equal(x.targets, y.targets)
    assert not torch.equal(a[0].inputs, c[0].inputs)
    assert a[0].inputs.shape == (8, 80)


@pytest.mark.parametrize("mode", MODES)
def test_eval_splits_identical_across_run_seeds(mode):
    a, b = task(seed=0, mode=mode).eval_splits(), task(seed=7, mode=mode).eval_splits()
    for split in a:
        assert torch.equal(a[split].inputs, b[split].inputs) and torch.equal(a[split].targets, b[split].targets)
    assert not torch.equal(a["len_10"].inputs[0], a["len_10"].inputs[1])  # not one example repeated


def check_example(text: str, mode: str, n: int | None, gram: int = 3, m: int = 5) -> str:
    """Checks the format of one example ('$...|...'), returns its answer."""
    assert text[0] == "$" and text[-1] == "." and text.count("$") == 1 and text.count(".") == 1
    parts = text[1:-1].split("|")
    letters = set("abcdefghijklmnopqrstuvwxyz")
    assert all(set(p) <= letters for p in parts)
    if mode in ("copy", "dup_ngram"):
        s, answer = parts
        assert answer == s
        if n is not None:
            assert len(s) == n
        if mode == "dup_ngram":
            grams = [s[i : i + gram] for i in range(len(s) - gram + 1)]
            assert len(set(grams)) < len(grams), f"no duplicated {gram}-gram in {s}"
    else:
        key, s, answer = parts if mode == "lookup_prefix" else (parts[1], parts[0], parts[2])
        assert len(key) == gram and len(answer) == m
        assert s.count(key) == 1 and sum(s[i : i + gram] == key for i in range(len(s))) == 1
        p = s.index(key)
        assert s[p + gram : p + gram + m] == answer
        if n is not None:
            assert len(s) == n
    return answer


@pytest.mark.parametrize("mode", MODES)
def test_format_and_loss_mask(mode):
    t = task(mode=mode)
    rows = [(split, b.inputs[i], b.targets[i]) for split, b in t.eval_splits().items() for i in range(len(b))]
    rows += [(None, b.inputs[i], b.targets[i]) for b in batches(t, 0) for i in range(len(b))]
    for split, x, y in rows:
        n = int(split[4:]) if split else None
        texts = examples(x)
        assert len(texts) >= 1 and (split is None or len(texts) == 1)
        # targets are the next input exactly on the answer letters and the closing '.'
        expected = []
        start = 0
        for text in texts:
            answer = check_example(text, mode, n)
            first = start + len(text) - len(answer) - 2  # the position whose next token is the answer's first
            expected += [(first + i, t.encode(answer + ".")[i]) for i in range(len(answer) + 1)]
            start += len(text)
        assert answer_span(x, y) == expected
        for t_, y_ in expected:
            assert x[t_ + 1].item() == y_
        assert torch.all(x[start:] == PAD) and torch.all(y[start:] == IGNORE_INDEX)


def test_packing_fills_rows_with_whole_examples():
    t = task(train_len=(5, 20), context_len=128)
    lengths, seen = [], 0
    for b in batches(t, 3, n=5, batch_size=16):
        seen += t.examples_in(b)
        for row in b.inputs:
            texts = examples(row)
            used = sum(map(len, texts))
            assert used <= 128
            # the next example (which opens the next row) did not fit: at most 2*20+3 - 1 slots left
            assert 128 - used < 2 * 20 + 3
            lengths += [len(e) for e in texts]
    assert seen == len(lengths)
    assert min(lengths) >= 13 and max(lengths) <= 43 and len(set(lengths)) > 10
    unpacked = batches(task(pack=False), 3)[0]
    assert t.examples_in(unpacked) == len(unpacked)
    assert torch.all(unpacked.inputs[:, 0] == BOS)


def test_example_carried_over_not_dropped():
    """Packing is a pure re-chunking of the unpacked example stream."""
    packed = batches(task(pack=True), 5, n=2)
    unpacked = batches(task(pack=False), 5, n=8)
    flat_packed = [e for b in packed for row in b.inputs for e in examples(row)]
    flat_unpacked = [e for b in unpacked for row in b.inputs for e in examples(row)]
    k = min(len(flat_packed), len(flat_unpacked))
    assert k > 20 and flat_packed[:k] == flat_unpacked[:k]


def test_config_validation():
    with pytest.raises(ValidationError, match="context_len=40 is shorter"):
        CopyingConfig(name="copy", train_len=(5, 20), context_len=40)
    CopyingConfig(name="copy", train_len=(5, 20), context_len=43)
    with pytest.raises(ValidationError, match="lo <= hi"):
        CopyingConfig(name="copy", train_len=(9, 5))
    with pytest.raises(ValidationError, match="max_len=100"):
        CopyingConfig(name="copy", test_lengths=(10, 60), max_len=100)
    with pytest.raises(ValidationError, match="2 \\* ngram_n"):
        CopyingConfig(name="copy", mode="dup_ngram", train_len=(4, 10), ngram_n=3)
    with pytest.raises(ValidationError, match="ngram_n \\+ lookup_answer_len"):
        CopyingConfig(name="copy", mode="lookup_suffix", train_len=(6, 10), ngram_n=2, lookup_answer_len=5)
    with pytest.raises(ValidationError):
        CopyingConfig(name="copy", mode="reverse")
