"""Copying and n-gram lookup for decoder-only models (Jelassi et al. 2024, "Repeat After Me: Transformers
are Better than State Space Models at Copying").

Vocabulary: letters a-z are tokens 0-25, then BOS '$' (26), SEP '|' (27), EOS '.' (28), PAD '_' (29).
A string s has L letters drawn uniformly (iid) from a-z.  One example, by `mode`:

    copy            $ s | s .
    dup_ngram       $ s | s .        s built with duplicated n-grams (below)
    lookup_prefix   $ k | s | a .    k = s[p : p+n] (n = ngram_n),  a = s[p+n : p+n+m] (m = lookup_answer_len)
    lookup_suffix   $ s | k | a .

Lengths: copy / dup_ngram 2L + 3 tokens; lookup L + n + m + 4 tokens.

Loss (next-token prediction, causal model): targets[t] = inputs[t+1] where inputs[t+1] is an answer token
(the copy of s, or a) or the example's closing '.', IGNORE_INDEX everywhere else (the prompt, BOS/SEP, pad
and the last position of a row).  So exactly (answer length + 1) positions per example carry loss, and
`exact/<split>` of the supervised method = the whole answer and its '.' right under teacher forcing.

dup_ngram strings (n = ngram_n, every length must be >= 2n): s is a concatenation of c = ceil(L / n)
chunks of n letters, truncated to L.  Chunk 0 is fresh (uniform letters); chunk i >= 1 is, with
probability `dup_prob`, a copy of a uniformly chosen earlier chunk, else fresh.  If no chunk lying fully
inside s (i < L // n) came out a copy, chunk L // n - 1 (>= 1) is replaced by a copy of a uniformly
chosen earlier chunk.  Hence s always contains some n-gram at least twice (at two chunk-aligned,
non-overlapping positions).

lookup: p is uniform among the positions 0 <= p <= L - n - m whose key s[p : p+n] occurs exactly once
in s (so the answer is well defined); a string without such a position is redrawn.

Data:
  * train: an infinite stream drawn on the fly; one int from the `generator` passed to `train_batches`
    seeds a python RNG, so the stream is deterministic per generator state.  L uniform in `train_len`
    (inclusive).  pack=True: every row of `context_len` tokens holds whole examples back to back (each
    starts with '$'), as many as fit; the example that does not fit opens the next row (nothing is
    dropped, so the length distribution is exactly uniform), the rest of the row is PAD.
    pack=False: one example per row, padded with PAD to `context_len`.
  * eval: `test_size` examples per L in `test_lengths`, one per row, drawn from `eval_seed` (identical
    for every run seed).  Split names len_05, len_10, ...  All rows of a split have the same length
    (that of one example), so they carry no padding.
  * max_len = max(context_len, longest eval example); a config `max_len` (optional) caps it.

Examples seen: `examples_in(batch)` counts the '$' tokens of a batch (every example, packed or not, has
exactly one); sum it over training batches for "accuracy vs examples seen".
"""

from __future__ import annotations

import random
import string
from collections.abc import Iterator
from typing import Literal

import torch
from pydantic import Field, model_validator

from baselines.tasks.ranges import check_lengths, check_range
from harness.components import IGNORE_INDEX, TASKS, Batch
from harness.registry import ComponentConfig

LETTERS = string.ascii_lowercase
BOS, SEP, EOS, PAD = 26, 27, 28, 29
VOCAB = list(LETTERS) + ["$", "|", ".", "_"]
TO_ID = {c: i for i, c in enumerate(VOCAB)}

Mode = Literal["copy", "dup_ngram", "lookup_prefix", "lookup_suffix"]


class CopyingConfig(ComponentConfig):
    mode: Mode = "copy"
    train_len: tuple[int, int] = (5, 20)  # (lo, hi) string length L in training, inclusive
    test_lengths: tuple[int, ...] = (10, 20, 40, 60)
    context_len: int = Field(default=128, ge=1)  # length of a training row
    pack: bool = True
    ngram_n: int = Field(default=3, ge=1)  # dup_ngram: chunk length; lookup: key length
    dup_prob: float = Field(default=0.5, ge=0.0, le=1.0)  # dup_ngram: chance a chunk copies an earlier one
    lookup_answer_len: int = Field(default=5, ge=1)  # lookup: length m of the answer
    test_size: int = Field(default=200, ge=1)
    eval_seed: int = 1234
    max_len: int | None = Field(default=None, ge=1)  # optional cap on every row (train and eval)

    @model_validator(mode="after")
    def _check(self) -> CopyingConfig:
        check_range("train_len", self.train_len)
        check_lengths("test_lengths", self.test_lengths)
        lo, hi = self.train_len
        shortest = min(lo, min(self.test_lengths))
        if self.mode == "dup_ngram" and shortest < 2 * self.ngram_n:
            raise ValueError(f"dup_ngram needs every string length >= 2 * ngram_n = {2 * self.ngram_n}, got {shortest}")
        if self.mode.startswith("lookup") and shortest < self.ngram_n + self.lookup_answer_len:
            raise ValueError(
                f"lookup needs every string length >= ngram_n + lookup_answer_len = "
                f"{self.ngram_n + self.lookup_answer_len}, got {shortest}"
            )
        longest_train = self.example_len(hi)
        if self.context_len < longest_train:
            raise ValueError(
                f"context_len={self.context_len} is shorter than the longest training example "
                f"({longest_train} tokens for L={hi})"
            )
        if self.max_len is not None and self.task_max_len > self.max_len:
            raise ValueError(
                f"rows need {self.task_max_len} tokens (context_len={self.context_len}, longest eval example "
                f"{self.example_len(max(self.test_lengths))}) but max_len={self.max_len}"
            )
        return self

    def example_len(self, n: int) -> int:
        """Tokens in one example whose string has n letters."""
        if self.mode in ("copy", "dup_ngram"):
            return 2 * n + 3
        return n + self.ngram_n + self.lookup_answer_len + 4

    def held_bytes(self) -> dict[str, int]:
        """The eval sets (int64 inputs and targets); training rows are drawn on the fly."""
        return {"test_size": self.test_size * sum(2 * 8 * self.example_len(n) for n in self.test_lengths)}

    def dry_config(self, batch_size: int = 16) -> CopyingConfig:
        """Training rows are context_len long, drawn on the fly, whatever the test set: two per length will do."""
        return self.model_copy(update={"test_size": min(self.test_size, 2)})

    @property
    def task_max_len(self) -> int:
        return max(self.context_len, self.example_len(max(self.test_lengths)))


# ----------------------------------------------------------------------------------------------
# strings and examples


def random_string(rng: random.Random, n: int) -> list[int]:
    return [rng.randrange(26) for _ in range(n)]


def dup_ngram_string(rng: random.Random, n: int, gram: int, dup_prob: float) -> list[int]:
    """See the module docstring: chunks of `gram` letters, some copies of earlier chunks, >= 1 duplicate."""
    n_chunks = -(-n // gram)
    full = n // gram  # chunks lying fully inside the string (>= 2)
    chunks = [random_string(rng, gram)]
    copied_full = False
    for i in range(1, n_chunks):
        if rng.random() < dup_prob:
            chunks.append(list(chunks[rng.randrange(i)]))
            copied_full |= i < full
        else:
            chunks.append(random_string(rng, gram))
    if not copied_full:
        i = full - 1
        chunks[i] = list(chunks[rng.randrange(i)])
    return [c for chunk in chunks for c in chunk][:n]


def unique_key_positions(s: list[int], gram: int, answer_len: int) -> list[int]:
    """Positions p <= len(s) - gram - answer_len whose n-gram s[p:p+gram] occurs exactly once in s."""
    counts: dict[tuple[int, ...], int] = {}
    for p in range(len(s) - gram + 1):
        key = tuple(s[p : p + gram])
        counts[key] = counts.get(key, 0) + 1
    return [p for p in range(len(s) - gram - answer_len + 1) if counts[tuple(s[p : p + gram])] == 1]


class CopyingTask:
    vocab_size = len(VOCAB)

    def __init__(self, cfg: CopyingConfig, seed: int) -> None:
        self.cfg = cfg
        self.seed = seed  # unused: train data come from the generator, eval data from eval_seed
        self.max_len = cfg.task_max_len
        self._eval = {}
        for n in cfg.test_lengths:
            rng = random.Random(f"eval-{cfg.eval_seed}-{cfg.mode}-{n}")
            rows = [self.example(rng, n) for _ in range(cfg.test_size)]
            self._eval[f"len_{n:02d}"] = Batch(
                torch.tensor([r[0] for r in rows], dtype=torch.long),  # [test_size, example_len(n)]
                torch.tensor([r[1] for r in rows], dtype=torch.long),
            )

    def example(self, rng: random.Random, n: int) -> tuple[list[int], list[int]]:
        """(inputs, targets) of one example with a string of n letters; targets are already shifted:
        targets[t] = inputs[t+1] on the answer and '.', IGNORE_INDEX elsewhere (incl. the last slot)."""
        cfg = self.cfg
        if cfg.mode in ("copy", "dup_ngram"):
            s = random_string(rng, n) if cfg.mode == "copy" else dup_ngram_string(rng, n, cfg.ngram_n, cfg.dup_prob)
            prompt, answer = [BOS] + s + [SEP], s
        else:
            for _ in range(1000):
                s = random_string(rng, n)
                positions = unique_key_positions(s, cfg.ngram_n, cfg.lookup_answer_len)
                if positions:
                    break
            else:
                raise RuntimeError(f"no string of length {n} with a unique {cfg.ngram_n}-gram key in 1000 draws")
            p = rng.choice(positions)
            key, answer = s[p : p + cfg.ngram_n], s[p + cfg.ngram_n : p + cfg.ngram_n + cfg.lookup_answer_len]
            if cfg.mode == "lookup_prefix":
                prompt = [BOS] + key + [SEP] + s + [SEP]
            else:
                prompt = [BOS] + s + [SEP] + key + [SEP]
        inputs = prompt + answer + [EOS]
        targets = [IGNORE_INDEX] * (len(prompt) - 1) + answer + [EOS] + [IGNORE_INDEX]
        return inputs, targets

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[Batch]:
        """Infinite stream of [batch_size, context_len] batches (see the module docstring)."""
        cfg = self.cfg
        rng = random.Random(int(torch.randint(0, 2**62, (1,), generator=generator).item()))
        lo, hi = cfg.train_len
        T = cfg.context_len
        pending: tuple[list[int], list[int]] | None = None
        while True:
            inputs = torch.full((batch_size, T), PAD, dtype=torch.long)
            targets = torch.full((batch_size, T), IGNORE_INDEX, dtype=torch.long)
            for b in range(batch_size):
                x: list[int] = []
                y: list[int] = []
                while True:
                    ex = pending if pending is not None else self.example(rng, rng.randint(lo, hi))
                    pending = None
                    if x and len(x) + len(ex[0]) > T:
                        pending = ex  # opens the next row
                        break
                    x += ex[0]
                    y += ex[1]
                    if not cfg.pack:
                        break
                inputs[b, : len(x)] = torch.tensor(x)
                targets[b, : len(y)] = torch.tensor(y)
            yield Batch(inputs, targets)

    def eval_splits(self) -> dict[str, Batch]:
        return dict(self._eval)

    @staticmethod
    def examples_in(batch: Batch) -> int:
        """Number of examples in a batch (= its '$' tokens)."""
        return int((batch.inputs == BOS).sum().item())

    @staticmethod
    def decode(tokens: torch.Tensor | list[int]) -> str:
        """Token ids -> text, e.g. '$abc|abc.__' (IGNORE_INDEX, as in target rows, shows as '~')."""
        ids = tokens.tolist() if isinstance(tokens, torch.Tensor) else tokens
        return "".join("~" if i == IGNORE_INDEX else VOCAB[i] for i in ids)

    @staticmethod
    def encode(text: str) -> list[int]:
        return [TO_ID[c] for c in text]


@TASKS.register("copy", CopyingConfig)
def build(cfg: CopyingConfig, seed: int) -> CopyingTask:
    return CopyingTask(cfg, seed)
