"""Validation of the length settings shared by the sequence tasks (raise ValueError for pydantic)."""

from __future__ import annotations

from typing import Sequence


def check_range(name: str, value: tuple[int, int]) -> None:
    """An inclusive (lo, hi) range of lengths with 1 <= lo <= hi."""
    lo, hi = value
    if not 1 <= lo <= hi:
        raise ValueError(f"{name} must satisfy 1 <= lo <= hi, got {value}")


def check_lengths(name: str, value: Sequence[int]) -> None:
    """A non-empty list of lengths, each >= 1."""
    if not value or min(value) < 1:
        raise ValueError(f"{name} must be a non-empty list of n >= 1, got {value}")
