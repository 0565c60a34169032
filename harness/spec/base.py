"""Base pieces shared by every spec model: strict (unknown keys rejected, frozen) and scalars."""

from __future__ import annotations

from typing import Union

from pydantic import BaseModel, ConfigDict

Scalar = Union[str, int, float, bool, None]
Label = Union[Scalar, list[Scalar]]  # the value of an axis for one run (an axis may range over lists, e.g. [lo, hi])
Where = dict[str, Union[Scalar, list[Union[Scalar, list[Scalar]]]]]  # report/claim filters: a value, or any of a list (a list axis: lists)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
