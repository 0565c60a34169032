"""Validation of the ranges shared by task and mask-sampler configs: integer length ranges and lists of the
sequence tasks, float intervals (scales, aspects, sizes) of the image tasks and mask samplers.  Each raises
ValueError, which pydantic reports at the field."""

from __future__ import annotations

from collections.abc import Sequence


def check_range(name: str, value: tuple[int, int]) -> None:
    """An inclusive (lo, hi) range of lengths with 1 <= lo <= hi."""
    lo, hi = value
    if not 1 <= lo <= hi:
        raise ValueError(f"{name} must satisfy 1 <= lo <= hi, got {value}")


def check_lengths(name: str, value: Sequence[int]) -> None:
    """A non-empty list of lengths, each >= 1."""
    if not value or min(value) < 1:
        raise ValueError(f"{name} must be a non-empty list of n >= 1, got {value}")


def check_interval(name: str, value: tuple[float, float], low: float, high: float | None = None) -> None:
    """A (lo, hi) interval with low < lo <= hi (<= high when given)."""
    lo, hi = value
    if not (low < lo <= hi and (high is None or hi <= high)):
        bound = f" <= {high}" if high is not None else ""
        raise ValueError(f"{name} must satisfy {low} < lo <= hi{bound}, got {value}")
