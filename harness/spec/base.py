"""Base pieces shared by every spec model: strict (unknown keys rejected, frozen) and scalars."""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import BaseModel, ConfigDict, Field, StrictInt

Scalar = Union[str, int, float, bool, None]
Label = Union[Scalar, list[Scalar]]  # the value of an axis for one run (an axis may range over lists, e.g. [lo, hi])
Where = dict[str, Union[Scalar, list[Union[Scalar, list[Scalar]]]]]  # report/claim filters: a value, or any of a list (a list axis: lists)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)  # inf / nan run nowhere: refused at the key


Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$", max_length=100)]  # a suite's or a stage's: a file name and an MLflow name
Seed = Annotated[StrictInt, Field(ge=0, lt=2**63)]  # an integer torch's and numpy's generators accept (not "0", not true)
