"""The one error type of the spec layer: a one-line message naming file, line and key path."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Loc:
    """Where a value came from: a file (or '<override>'), a 1-based line, and its key path there."""

    file: str
    line: int
    key: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


class SpecError(ValueError):
    """Invalid suite input.  str() is one line: `file:line: key.path: what was expected`."""

    exit_code = 2

    def __init__(self, loc: Loc, message: str) -> None:
        self.loc = loc
        self.message = " ".join(message.split())  # always one line
        # a key or file name may hold line breaks too (`"a\nb": 1`): the message stays one line
        super().__init__(" ".join(f"{loc}: {loc.key or '<root>'}: {self.message}".splitlines()))
