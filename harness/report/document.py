"""The report as a list of blocks, rendered alike to Markdown, HTML and LaTeX."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union


@dataclass
class Section:
    """A titled table of text cells (metric tables, claims, reproducibility; extra sections such as
    tuning results are passed to `write_report` in this form).  `bold` marks cells, e.g. the best."""

    title: str
    columns: list[str]
    rows: list[list[str]]
    note: str = ""
    bold: Optional[list[list[bool]]] = None
    links: Optional[list[list[str]]] = None  # a URL per cell ("" for none): HTML anchors, Markdown links
    latex: bool = True  # part of tables.tex (a runs index is not)

    def __post_init__(self) -> None:
        bad = [i for i, r in enumerate(self.rows) if len(r) != len(self.columns)]
        if bad:
            raise ValueError(f"section {self.title!r}: row {bad[0]} has {len(self.rows[bad[0]])} cells for {len(self.columns)} columns")

    def is_bold(self, i: int, j: int) -> bool:
        return bool(self.bold and self.bold[i][j])

    def link(self, i: int, j: int) -> str:
        return self.links[i][j] if self.links else ""

    def markdown(self) -> str:
        def cell(text: str) -> str:
            return text.replace("|", "\\|").replace("\n", " ")

        lines = ["| " + " | ".join(map(cell, self.columns)) + " |", "|" + "|".join("---" for _ in self.columns) + "|"]
        for i, row in enumerate(self.rows):
            texts = [f"[{cell(c)}]({self.link(i, j)})" if self.link(i, j) else cell(c) for j, c in enumerate(row)]
            lines.append("| " + " | ".join(f"**{t}**" if self.is_bold(i, j) else t for j, t in enumerate(texts)) + " |")
        return "\n".join(lines)


@dataclass
class Figure:
    title: str
    path: Optional[Path]  # None: nothing to plot yet
    note: str = ""  # how the lines and bands are made


@dataclass
class Text:
    title: str
    lines: list[str]  # paragraphs
    code: list[str] = field(default_factory=list)  # shown verbatim (commands)


Block = Union[Section, Figure, Text]


@dataclass
class Document:
    title: str
    intro: list[str]  # paragraphs
    blocks: list[Block]
