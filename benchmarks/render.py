"""Records to Markdown: one generic table, declared by which records it takes, which fields label its rows and
which columns it shows (a column is a field of one record of the row, a pivot over a configuration field, or the
ratio of two such cells).

>>> from benchmarks.records import Record
>>> recs = [Record("ops", "latency", v, "us", {"op": op, "series": s}) for op, s, v in
...         [("ADD", "api", 30.0), ("ADD", "raw", 20.0), ("DEL", "api", 5.0), ("DEL", "raw", 1.0)]]
>>> print("\\n".join(table(recs, Table(rows=("op",), cols=(Pivot("series", "{} µs"), Ratio("API / raw",
...       {"series": "api"}, {"series": "raw"}))))))
| op | api µs | raw µs | API / raw |
|---|---|---|---|
| ADD | 30.0 | 20.0 | 1.50× |
| DEL | 5.00 | 1.00 | 5.00× |
<BLANKLINE>
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from benchmarks.records import Record, select

__all__ = ["Col", "Pivot", "Ratio", "Section", "Table", "fmt", "render", "table"]

Format = Literal["num", "num4", "ratio", "int", "text", "pct", "slope", "unit"]


def fmt(x: Any, how: Format = "num", unit: str = "") -> str:
    """A cell: ``num`` three significant digits (thousands grouped), ``num4`` four, ``ratio`` ``1.23×``, ``int``
    grouped, ``pct`` a share as percent, ``slope`` two decimals, ``unit`` by the record's unit; None is ``–``."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    if how == "text" or isinstance(x, str):
        return str(x)
    if how == "unit":
        return fmt(x, "ratio") if unit == "x" else f"{fmt(x)} {'µs' if unit == 'us' else unit}".rstrip()
    if how == "ratio":
        return f"{float(x):.2f}×"
    if how == "int":
        return f"{int(x):,}"
    if how == "pct":
        return f"{float(x) * 100:.1f}%"
    if how == "slope":
        return f"{float(x):.2f}"
    digits = 4 if how == "num4" else 3
    x = float(x)
    if x == 0:
        return "0"
    if abs(x) >= 10**digits:
        return f"{x:,.0f}"
    return f"{x:.{max(0, digits - 1 - math.floor(math.log10(abs(x))))}f}"


@dataclass(frozen=True)
class Col:
    """One column: ``show`` (a record or configuration field; ``"per_s"``: calls per second from the mean µs) of
    the row's first record matching ``where``."""

    header: str
    where: Mapping[str, Any] = field(default_factory=dict)
    show: str = "value"
    how: Format = "num"


@dataclass(frozen=True)
class Pivot:
    """One column per distinct value of the configuration field ``by`` among the records matching ``where``
    (numbers sorted, strings in order of appearance); ``header`` is formatted with the value."""

    by: str
    header: str = "{}"
    where: Mapping[str, Any] = field(default_factory=dict)
    show: str = "value"
    how: Format = "num"


@dataclass(frozen=True)
class Ratio:
    """The ratio of two cells of the row: the value of the record matching ``num`` over that matching ``den``."""

    header: str
    num: Mapping[str, Any]
    den: Mapping[str, Any]


@dataclass(frozen=True)
class Table:
    """A table over the records matching ``where``: one row per distinct value of ``rows`` (fields, in order of
    appearance), one sub-table per distinct value of ``split`` under ``caption`` (formatted with those fields)."""

    rows: tuple[str, ...]
    cols: tuple[Col | Pivot | Ratio, ...]
    where: Mapping[str, Any] = field(default_factory=dict)
    split: tuple[str, ...] = ()
    caption: str = ""
    labels: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Section:
    """A report section: a heading, prose (``{field}`` filled from the first matching record's fields) and tables;
    left out when none of its tables has a row."""

    title: str
    text: str
    tables: tuple[Table, ...]


def _get(r: Record, show: str) -> Any:
    if show == "per_s":
        return 1e6 / r.mean if r.mean else None
    return r[show]


def _cell(recs: Sequence[Record], where: Mapping[str, Any], show: str) -> tuple[Any, str]:
    for r in recs:
        if r.matches(**where):
            return _get(r, show), r.unit
    return None, ""


def _values(recs: Sequence[Record], by: str) -> list[Any]:
    seen = list(dict.fromkeys(r[by] for r in recs if r[by] is not None))
    return sorted(seen) if all(isinstance(v, (int, float)) for v in seen) else seen


def _columns(recs: Sequence[Record], cols: Sequence[Col | Pivot | Ratio]) -> list[Col | Ratio]:
    out: list[Col | Ratio] = []
    for c in cols:
        if isinstance(c, Pivot):
            values = _values([r for r in recs if r.matches(**c.where)], c.by)
            out += [Col(c.header.format(v), {**c.where, c.by: v}, c.show, c.how) for v in values]
        else:
            out.append(c)
    return out


def _label(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def _one(recs: Sequence[Record], spec: Table) -> list[str]:
    keys = list(dict.fromkeys(tuple(r[f] for f in spec.rows) for r in recs))
    keys = [k for k in keys if all(v is not None for v in k)]
    if not keys:
        return []
    cols = _columns(recs, spec.cols)
    header = [*(spec.labels or spec.rows), *(c.header for c in cols)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for key in keys:
        row = [r for r in recs if tuple(r[f] for f in spec.rows) == key]
        cells = [_label(v) for v in key]
        for c in cols:
            if isinstance(c, Ratio):
                a, _ = _cell(row, c.num, "value")
                b, _ = _cell(row, c.den, "value")
                cells.append(fmt(a / b if a is not None and b else None, "ratio"))
            else:
                value, unit = _cell(row, c.where, c.show)
                cells.append(fmt(value, c.how, unit))
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def table(records: Sequence[Record], spec: Table) -> list[str]:
    """The Markdown lines of ``spec`` over ``records`` (nothing when no row has data)."""
    recs = select(records, **spec.where)
    if not spec.split:
        return _one(recs, spec)
    out: list[str] = []
    for part in dict.fromkeys(tuple(r[f] for f in spec.split) for r in recs):
        sub = [r for r in recs if tuple(r[f] for f in spec.split) == part]
        lines = _one(sub, spec)
        if lines:
            values = {f: _label(v) for f, v in zip(spec.split, part)}
            out += [spec.caption.format(**values), "", *lines] if spec.caption else lines
    return out


def render(records: Sequence[Record], sections: Sequence[Section]) -> list[str]:
    """The Markdown lines of every section that has data."""
    out: list[str] = []
    for s in sections:
        body = [line for t in s.tables for line in table(records, t)]
        if not body:
            continue
        first = next((r for t in s.tables for r in select(records, **t.where)), None)
        values = {**first.config, "benchmark": first.benchmark} if first is not None else {}
        out += [f"## {s.title}", ""]
        if s.text:
            out += [s.text.format_map(_Blank(values)), ""]
        out += body
    return out


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"
