"""Paper-style tables: rows x columns, cell = the statistic over seeds with its 95% interval, the best in bold
only where it is separated from every other row beyond noise (≈ marks the rows not separated from the best:
non-significance, not equivalence), a seeds column counting runs and distinct seeds, the axes a cell pools
named, and the suite's reference arms (floors, ceilings) as extra rows wherever they log the table's metric,
outside the bold comparison (harness.report.stats says how each number is made)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import polars as pl

from harness.report import stats
from harness.report.document import Section
from harness.report.frame import items_of, long_format, natural, select, show
from harness.spec.claim_models import ReferenceSpec
from harness.spec.models import TableSpec

TIE = " ≈"


@dataclass
class Cell:
    values: list[float]
    seeds: list[int]
    est: stats.Estimate

    @property
    def items(self) -> int | None:
        return self.est.items


@dataclass
class Table:
    title: str
    header: list[str]
    cells: list[list[str]]  # plain text
    bold: list[list[bool]]  # best of its column, separated from the rest
    grid: dict[tuple, dict[object, Cell]]  # row key -> column value -> cell
    runs: dict[tuple, tuple[int, int]]  # row key -> (runs, distinct seeds)
    note: str = ""
    pooled: dict[str, int] = field(default_factory=dict)  # axis -> distinct values within a cell
    run_ids: set[str] = field(default_factory=set)  # the runs this table shows

    @property
    def rows(self) -> list[list[str]]:
        """Cells with the best ones in Markdown bold."""
        return [[f"**{c}**" if b else c for c, b in zip(row, bold)] for row, bold in zip(self.cells, self.bold)]

    def section(self) -> Section:
        return Section(self.title, self.header, self.cells, note=self.note, bold=self.bold)

    def markdown(self) -> str:
        return self.section().markdown()

    def long(self) -> pl.DataFrame:
        """row key (as text), column, runs, seeds, center, lo, hi, sd: every cell at full precision."""
        out = [{"row": " / ".join(map(show, k)), "column": show(c), "runs": len(cell.values), "seeds": len(set(cell.seeds)),
                "center": cell.est.center, "lo": cell.est.lo, "hi": cell.est.hi, "sd": cell.est.sd}
               for k, cols in self.grid.items() for c, cell in cols.items()]
        return pl.DataFrame(out)


def fmt(est: stats.Estimate, decimals: int, with_std: bool = False) -> str:
    """`center [lo, hi]` (a proportion's interval lies in [0, 1] by construction; nothing else is clipped)."""
    if math.isnan(est.center):
        return "–"
    text = f"{est.center:.{decimals}f}"
    if with_std and not math.isnan(est.sd):
        text += f" ± {est.sd:.{decimals}f}"
    if est.has_interval:
        text += f" [{est.lo:.{decimals}f}, {est.hi:.{decimals}f}]"
    return text


def _paired(a: Cell, b: Cell) -> tuple[list[float], list[float], bool]:
    """Both cells' values aligned by seed when each holds one run per seed of the same seeds (paired)."""
    if len(set(a.seeds)) == len(a.seeds) == len(b.seeds) == len(set(b.seeds)) and set(a.seeds) == set(b.seeds):
        ia, ib = dict(zip(a.seeds, a.values)), dict(zip(b.seeds, b.values))
        order = sorted(ia)
        return [ia[s] for s in order], [ib[s] for s in order], True
    return a.values, b.values, False


def _marks(column: list[Cell | None], higher: bool) -> tuple[list[bool], list[bool], str]:
    """(bold, tie) per row of one column: the best cell is bold when it is separated from every other cell
    (stats.separated); otherwise it and the cells not separated from it are ties.  No marks when a cell has
    one run (its noise is unknown) or when every cell has the same value."""
    cells = [(i, c) for i, c in enumerate(column) if c is not None and not math.isnan(c.est.center)]
    bold, tie = [False] * len(column), [False] * len(column)
    if len(cells) < 2 or len({c.est.center for _, c in cells}) == 1:
        return bold, tie, ""
    best_i, best = (max if higher else min)(cells, key=lambda ic: ic[1].est.center)
    tests, close = set(), []
    for i, c in cells:
        if i == best_i:
            continue
        x, y, paired = _paired(best, c)
        sep = stats.separated(x, y, paired, best.items, c.items)
        if sep is None:
            return bold, tie, "unknown"
        tests.add(("paired t-interval" if paired else "Welch's t-interval") + (" + test items" if best.items or c.items else ""))
        if not sep:
            close.append(i)
    if close:
        for i in [best_i, *close]:
            tie[i] = True
    else:
        bold[best_i] = True
    return bold, tie, " / ".join(sorted(tests))


def _pooled(sub: pl.DataFrame, keys: list[str], axes: Sequence[str]) -> dict[str, int]:
    """Axes (config paths, ablation, stage) with more than one value within some cell of the table."""
    keys = [k for k in keys if k in sub.columns]
    if sub.is_empty() or "cell" not in sub.columns:
        return {}
    groups = [g for _, g in sub.group_by(keys)] if keys else [sub]
    if all(g["cell"].n_unique() <= 1 for g in groups):
        return {}
    out = {}
    for a in axes:
        if a in sub.columns and a not in keys:
            n = max(len({repr(v) for v in g[a].to_list()}) for g in groups)
            if n > 1:
                out[a] = n
    return out or {"cell": max(g["cell"].n_unique() for g in groups)}  # cells differ in what no axis names (e.g. a source)


def _cells(long: pl.DataFrame, statistic: str) -> dict[object, Cell]:
    """Column value -> the cell of those runs."""
    out = {}
    for (x,), gx in long.group_by("x", maintain_order=True):
        values = gx["value"].to_list()
        out[x] = Cell(values, gx["seed"].to_list(), stats.interval(values, statistic, items_of(gx["items"].to_list())))
    return out


@dataclass
class RefRow:
    """A reference arm's row of a table: its role and name, the row keys it is matched on, its cells."""

    name: str
    role: str
    key: dict[str, object]  # row path -> value, for the row paths the reference is matched on
    cells: dict[object, Cell]
    run_ids: set[str]


def reference_rows(df: pl.DataFrame, spec: TableSpec, references: Mapping[str, ReferenceSpec], columns: list,
                   row_keys: Sequence[tuple] = ()) -> list[RefRow]:
    """Each reference that logs the table's metric, one row per value of the row paths it is matched on that the
    table's own rows have (a `where` value of a matched path applies too); a column path it is not matched on
    gets its one value in every column."""
    shown = {p: {repr(k[i]) for k in row_keys} for i, p in enumerate(spec.rows)}
    out = []
    for name, ref in references.items():
        sub = select(select(df, ref.where), {k: v for k, v in spec.where.items() if k in ref.match})
        keys = [r for r in spec.rows if r in ref.match]
        by_column = spec.columns is None or spec.columns in ref.match
        framed = sub if by_column or sub.is_empty() else sub.with_columns(pl.lit("").alias("_x"))
        long = long_format(framed, spec.metric, keys, spec.columns if by_column else "_x")
        for key, g in (long.group_by(keys, maintain_order=True) if keys else [((), long)]):
            if g.is_empty() or any(row_keys and repr(v) not in shown[p] for p, v in zip(keys, key)):
                continue
            cells = _cells(g, spec.statistic)
            if not by_column:
                cells = {c: cells[""] for c in columns}
            out.append(RefRow(name, ref.role, dict(zip(keys, key)), cells, set(g["run_id"].to_list())))
    return sorted(out, key=lambda r: (r.role != "floor", r.name, tuple(natural(v) for v in r.key.values())))


def metric_table(df: pl.DataFrame, spec: TableSpec, axes: Sequence[str] = (),
                 references: Mapping[str, ReferenceSpec] | None = None) -> Table:
    """The table of `spec` over the results frame; `axes` are the suite's axes (config paths that vary,
    plus `ablation` and `stage`): those varying within a cell are named as pooled; `references`: the
    suite's reference arms, shown as rows where they log the metric."""
    sub = select(df, spec.where)
    long = long_format(sub, spec.metric, spec.rows, spec.columns)
    label = f"{spec.column_label} " if spec.column_label else ""
    if long.is_empty():
        return Table(spec.title, [*spec.rows, "seeds"], [], [], {}, {})
    grid: dict[tuple, dict[object, Cell]] = {}
    runs: dict[tuple, tuple[int, int]] = {}
    for key, g in long.group_by(spec.rows, maintain_order=True):
        runs[key] = (g["run_id"].n_unique(), g["seed"].n_unique())
        grid[key] = _cells(g, spec.statistic)
    row_keys = sorted(grid, key=lambda k: tuple(natural(v) for v in k))
    columns = sorted({x for cols in grid.values() for x in cols}, key=natural)
    refs = reference_rows(df, spec, references or {}, columns, row_keys)
    lead = 1 if refs else 0  # the `arm` column: blank for the table's own rows, role: name for a reference
    bold = [[False] * (lead + len(spec.rows) + 1 + len(columns)) for _ in [*row_keys, *refs]]
    tie = [[False] * len(columns) for _ in row_keys]
    tests: set[str] = set()
    unknown = False
    for j, c in enumerate(columns):
        b, t, test = _marks([grid[k].get(c) for k in row_keys], spec.higher_is_better)
        unknown |= test == "unknown"
        tests |= {test} if test and test != "unknown" else set()
        for i in range(len(row_keys)):
            bold[i][lead + len(spec.rows) + 1 + j], tie[i][j] = b[i], t[i]
    cells = []
    for i, k in enumerate(row_keys):
        n_runs, n_seeds = runs[k]
        texts = [fmt(grid[k][c].est, spec.decimals, spec.std) + (TIE if tie[i][j] else "") if c in grid[k] else "–"
                 for j, c in enumerate(columns)]
        cells.append([*([""] if lead else []), *map(show, k), _count(n_runs, n_seeds), *texts])
    for r in refs:
        seeds = {s for c in r.cells.values() for s in c.seeds}
        texts = [fmt(r.cells[c].est, spec.decimals, spec.std) if c in r.cells else "–" for c in columns]
        cells.append([f"{r.role}: {r.name}", *[show(r.key[p]) if p in r.key else "" for p in spec.rows],
                      _count(len(r.run_ids), len(seeds)), *texts])
    keys = [*spec.rows, *([spec.columns] if spec.columns else [])]
    pooled = _pooled(sub.filter(pl.col("run_id").is_in(long["run_id"].unique().to_list())), keys, axes)
    header = [*(["arm"] if lead else []), *spec.rows, "seeds", *[f"{label}{show(c)}" for c in columns]]
    shown = set(long["run_id"].to_list()) | {i for r in refs for i in r.run_ids}
    table = Table(spec.title, header, cells, bold, grid, runs, pooled=pooled, run_ids=shown)
    table.note = " ".join(filter(None, [caption(spec, table, tests, unknown, refs), sources_note(df, long, spec.rows, row_keys)]))
    return table


def _count(n_runs: int, n_seeds: int) -> str:
    return str(n_seeds) if n_runs == n_seeds else f"{n_runs} runs / {n_seeds} seeds"


def sources_note(df: pl.DataFrame, long: pl.DataFrame, rows: Sequence[str], row_keys: Sequence[tuple]) -> str:
    """For a table of stage runs: per row, the runs they started from (each source cell with its seeds), so a
    probe row names the pretraining runs it read.  '' when no run of the table has a source."""
    if "source.run_id" not in df.columns:
        return ""
    staged = df.filter(pl.col("run_id").is_in(long["run_id"].unique().to_list()) & pl.col("source.run_id").is_not_null())
    if staged.is_empty():
        return ""
    found = df.select(pl.col("run_id").alias("source.run_id"), pl.col("cell").alias("_src_cell"), pl.col("seed").alias("_src_seed"))
    staged = staged.with_columns([pl.lit(None, dtype=pl.String).alias(k) for k in rows if k not in staged.columns])
    joined = staged.select([*dict.fromkeys(rows), "source.run_id"]).join(found, on="source.run_id", how="left")
    by_row: dict[tuple, list[str]] = {}
    for key, g in joined.group_by(list(rows), maintain_order=True):
        parts = []
        for (cell,), gc in g.group_by("_src_cell", maintain_order=True):
            seeds = sorted({s for s in gc["_src_seed"].to_list() if s is not None})
            parts.append(f"`{cell}` (seeds {', '.join(map(str, seeds))})" if cell is not None
                         else f"{gc.height} run(s) with no results in the store")
        by_row[key] = parts
    shown = [f"{' / '.join(map(show, k))} ← {' + '.join(by_row[k])}" for k in row_keys if k in by_row]
    return "Source runs per row (stage runs start from them): " + "; ".join(shown) + "."


def caption(spec: TableSpec, table: Table, tests: set[str], unknown: bool, refs: Sequence[RefRow] = ()) -> str:
    """How the table's numbers are made, in words (shown under it in every format)."""
    methods = {c.est.method for cols in table.grid.values() for c in cols.values()}
    what = {"mean": "mean", "median": "median", "iqm": "IQM (interquartile mean)"}[spec.statistic]
    how = " / ".join(stats.METHODS[m] for m in stats.METHODS if m in methods)
    parts = [f"Cells: {what}{' ± std' if spec.std else ''} [95% interval: {how}] over the runs of each cell."]
    if tests:
        parts.append(f"Bold: the best of its column where it is separated from every other row ({' / '.join(sorted(tests))}, "
                     f"α = 0.05, {stats.MIN_DECIDE} or more seeds a cell); ≈: the best and the rows not separated from it "
                     "(not shown to be equal: no test of equivalence).")
    elif unknown:
        parts.append(f"Nothing is bold: a cell with fewer than {stats.MIN_DECIDE} runs, or without a noise estimate, "
                     "cannot be separated from the rest.")
    if refs:
        parts.append("Reference arms (the suite's `references`: floors and ceilings) are the last rows, outside the "
                     "bold comparison.")
    if table.pooled:
        declared = [a for a in table.pooled if a in spec.pool]
        undeclared = [a for a in table.pooled if a not in spec.pool]
        per_cell = max(n for n, _ in table.runs.values())
        if undeclared:
            parts.append(f"POOLED (not a row, column or `where`): {', '.join(f'{a} ({table.pooled[a]} values)' for a in undeclared)}; "
                         f"up to {per_cell} runs per cell: add them to `rows` or `where`, or to `pool` to average them on purpose.")
        if declared:
            parts.append(f"Averaged on purpose (`pool`): {', '.join(f'{a} ({table.pooled[a]} values)' for a in declared)}.")
    return " ".join(parts)
