"""Multi-digit addition / multiplication for length generalization (Jelassi et al. 2023, "Length
Generalization in Arithmetic Transformers").

Format (every sequence of a task has the same length):

    W  = max_digits                      width of operand a
    Wb = W if b_digits is None else b_digits   width of operand b
    Wr = W + 1 (add) | W + Wb (mul)      width of the result

    inputs  = [a_0 .. a_{W-1}, OP, b_0 .. b_{Wb-1}, '=', '_' x Wr]
    targets = [IGNORE_INDEX x (W + Wb + 2),          r_0 .. r_{Wr-1}]

Digits are little-endian (least significant first) and zero-padded to their fixed width; the result
slots hold '_' in the inputs and the result digits (little-endian, zero-padded) in the targets.  An
encoder reads the whole sequence and predicts every result digit at once.  Because all widths are
fixed, result digit r_i always sits at the same distance from a_i and b_i, whatever the length of
the numbers: a relative position encoding can therefore reuse what it learned on short numbers.

Vocabulary: digits 0-9 are tokens 0-9, then '+', '*', '=', '_'.

Data:
  * train: a FIXED set of `train_size` rows drawn from the run seed.  a has d digits, d uniform in
    `train_digits`, then a uniform among numbers with exactly d digits (0..9 for d = 1).  b: the same,
    independently, when b_digits is None, else exactly `b_digits` digits.
  * priming: `priming_k` extra rows with a of exactly `priming_digits` digits (b: priming_digits
    digits when b_digits is None, else b_digits), from a separate stream of the run seed so the base
    train set is identical whatever priming_k is.
  * eval: `test_size` rows per n in `test_digits` (a with n digits, b with n or b_digits digits),
    drawn from `eval_seed`: identical for every run seed.  Split names: len_05, len_10, ...
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import torch
from pydantic import Field, model_validator

from baselines.tasks.ranges import check_lengths, check_range
from harness.components import IGNORE_INDEX, TASKS, Batch
from harness.registry import ComponentConfig

PLUS, TIMES, EQUALS, BLANK = 10, 11, 12, 13
VOCAB = [str(d) for d in range(10)] + ["+", "*", "=", "_"]


class ArithmeticConfig(ComponentConfig):
    op: Literal["add", "mul"] = "add"
    train_digits: tuple[int, int] = (1, 5)  # (lo, hi) digit count of a in training
    b_digits: int | None = Field(default=None, ge=1)  # None: like a; int: b always has this many digits
    test_digits: tuple[int, ...] = tuple(range(5, 21))
    max_digits: int = Field(default=20, ge=1)  # width W of a (and of b when b_digits is None)
    train_size: int = Field(default=5000, ge=1)
    priming_k: int = Field(default=0, ge=0)
    priming_digits: int | None = Field(default=None, ge=1)  # None -> max(test_digits)
    test_size: int = Field(default=200, ge=1)
    eval_seed: int = 1234

    @model_validator(mode="after")
    def _check_widths(self) -> ArithmeticConfig:
        check_range("train_digits", self.train_digits)
        check_lengths("test_digits", self.test_digits)
        lo, hi = self.train_digits
        needed = {"train_digits hi": hi, "max(test_digits)": max(self.test_digits)}
        if self.priming_k > 0 or self.priming_digits is not None:
            needed["priming_digits"] = self.primed_digits
        for what, n in needed.items():
            if n > self.max_digits:
                raise ValueError(f"max_digits={self.max_digits} is smaller than {what}={n}")
        if self.b_digits is not None and self.b_digits > self.max_digits:
            raise ValueError(f"b_digits={self.b_digits} exceeds max_digits={self.max_digits}")
        return self

    def held_bytes(self) -> dict[str, int]:
        """The train set (incl. priming rows) and the eval sets, int64 inputs and targets (see Layout)."""
        width_b = self.max_digits if self.b_digits is None else self.b_digits
        row = 2 * 8 * Layout(self.op, self.max_digits, width_b).length
        return {"train_size": self.train_size * row, "priming_k": self.priming_k * row, "test_size": self.test_size * len(self.test_digits) * row}

    def dry_config(self, batch_size: int = 16) -> ArithmeticConfig:
        """Every row has the same fixed-width layout: one batch worth of training rows has the run's shapes."""
        return self.model_copy(update={"train_size": min(self.train_size, max(16, batch_size)), "priming_k": min(self.priming_k, 2),
                                       "test_size": min(self.test_size, 2)})

    @property
    def primed_digits(self) -> int:
        return self.priming_digits if self.priming_digits is not None else max(self.test_digits)


@dataclass(frozen=True)
class Layout:
    """Positions of the fields in a sequence (see the module docstring)."""

    op: str
    width_a: int
    width_b: int

    @property
    def width_r(self) -> int:
        return self.width_a + 1 if self.op == "add" else self.width_a + self.width_b

    @property
    def result_start(self) -> int:
        return self.width_a + 1 + self.width_b + 1

    @property
    def length(self) -> int:
        return self.result_start + self.width_r

    def encode(self, a: int, b: int) -> tuple[list[int], list[int]]:
        r = a + b if self.op == "add" else a * b
        op_token = PLUS if self.op == "add" else TIMES
        inputs = digits(a, self.width_a) + [op_token] + digits(b, self.width_b) + [EQUALS] + [BLANK] * self.width_r
        targets = [IGNORE_INDEX] * self.result_start + digits(r, self.width_r)
        return inputs, targets

    def decode(self, inputs: torch.Tensor, outputs: torch.Tensor) -> tuple[int, int, int]:
        """(a, b, r) from one row: a, b read from `inputs` [T], r from the result slots of `outputs` [T]
        (a target row or a row of predicted tokens)."""
        a = number(inputs[: self.width_a].tolist())
        b = number(inputs[self.width_a + 1 : self.width_a + 1 + self.width_b].tolist())
        r = number(outputs[self.result_start :].tolist())
        return a, b, r


def digits(x: int, width: int) -> list[int]:
    """Little-endian digits of x, zero-padded to width."""
    out = [int(c) for c in reversed(str(x))]
    if len(out) > width:
        raise ValueError(f"{x} does not fit in {width} digits")
    return out + [0] * (width - len(out))


def number(little_endian: list[int]) -> int:
    return int("".join(str(d) for d in reversed(little_endian)))


def sample_with_digits(rng: random.Random, n: int) -> int:
    """Uniform among numbers with exactly n digits (0..9 for n = 1)."""
    return rng.randrange(0 if n == 1 else 10 ** (n - 1), 10**n)


def to_batch(layout: Layout, pairs: list[tuple[int, int]]) -> Batch:
    rows = [layout.encode(a, b) for a, b in pairs]
    inputs = torch.tensor([r[0] for r in rows], dtype=torch.long).view(len(rows), layout.length)
    targets = torch.tensor([r[1] for r in rows], dtype=torch.long).view(len(rows), layout.length)
    return Batch(inputs, targets)  # [N, T] each


class ArithmeticTask:
    vocab_size = len(VOCAB)

    def __init__(self, cfg: ArithmeticConfig, seed: int) -> None:
        self.cfg = cfg
        width_b = cfg.max_digits if cfg.b_digits is None else cfg.b_digits
        self.layout = Layout(cfg.op, cfg.max_digits, width_b)
        self.max_len = self.layout.length

        rng = random.Random(seed)
        lo, hi = cfg.train_digits
        pairs = []
        for _ in range(cfg.train_size):
            a = sample_with_digits(rng, rng.randint(lo, hi))
            b = sample_with_digits(rng, cfg.b_digits if cfg.b_digits is not None else rng.randint(lo, hi))
            pairs.append((a, b))
        prime_rng = random.Random(f"priming-{seed}")
        n = cfg.primed_digits
        pairs += [self._pair_of_length(prime_rng, n) for _ in range(cfg.priming_k)]
        self.train = to_batch(self.layout, pairs)  # [train_size + priming_k, T]

        self._eval = {}
        for n in cfg.test_digits:
            eval_rng = random.Random(f"eval-{cfg.eval_seed}-{cfg.op}-{n}")
            self._eval[f"len_{n:02d}"] = to_batch(
                self.layout, [self._pair_of_length(eval_rng, n) for _ in range(cfg.test_size)]
            )

    def _pair_of_length(self, rng: random.Random, n: int) -> tuple[int, int]:
        a = sample_with_digits(rng, n)
        b = sample_with_digits(rng, n if self.cfg.b_digits is None else self.cfg.b_digits)
        return a, b

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[Batch]:
        """Shuffled epochs over the fixed train set (the last incomplete batch of an epoch is dropped)."""
        n = len(self.train)
        if batch_size > n:
            raise ValueError(f"batch_size={batch_size} exceeds the train set size {n}")
        while True:
            order = torch.randperm(n, generator=generator)
            for start in range(0, n - batch_size + 1, batch_size):
                idx = order[start : start + batch_size]
                yield Batch(self.train.inputs[idx], self.train.targets[idx])

    @staticmethod
    def examples_in(batch: Batch) -> int:
        """One example per row."""
        return len(batch)

    def eval_splits(self) -> dict[str, Batch]:
        return dict(self._eval)

    def decode(self, inputs: torch.Tensor, outputs: torch.Tensor) -> tuple[int, int, int]:
        return self.layout.decode(inputs, outputs)


@TASKS.register("arithmetic", ArithmeticConfig)
def build(cfg: ArithmeticConfig, seed: int) -> ArithmeticTask:
    return ArithmeticTask(cfg, seed)
