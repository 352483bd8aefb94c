"""The ODSQL syntax tree. Every node keeps the offset of its first token (`pos`, left out of
equality, so `year(d)` in select and in group_by compare equal) for error messages."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Node:
    pos: int = field(default=0, compare=False, kw_only=True)


@dataclass(frozen=True)
class FieldRef(Node):
    name: str


@dataclass(frozen=True)
class Star(Node):
    """`*`: every field (select), every text field (search) or every record (count)."""


@dataclass(frozen=True)
class Literal(Node):
    kind: str  # "string", "number", "bool", "null", "date", "geom"
    value: str | bool | None


@dataclass(frozen=True)
class Distance(Node):
    value: float
    unit: str


# --- conditions (where) ---

@dataclass(frozen=True)
class Compare(Node):
    op: str  # = != < <= > >=
    left: FieldRef | Literal
    right: FieldRef | Literal


@dataclass(frozen=True)
class BoolOp(Node):
    op: str  # "and" or "or"
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not(Node):
    operand: Node


@dataclass(frozen=True)
class BoolField(Node):
    """A boolean field standing alone as a condition."""
    target: FieldRef


@dataclass(frozen=True)
class InList(Node):
    target: FieldRef
    values: tuple[Literal, ...]


@dataclass(frozen=True)
class InRange(Node):
    target: FieldRef
    low: Literal
    high: Literal
    low_inclusive: bool
    high_inclusive: bool


@dataclass(frozen=True)
class Like(Node):
    target: FieldRef
    pattern: str


@dataclass(frozen=True)
class IsNull(Node):
    target: FieldRef


@dataclass(frozen=True)
class FullText(Node):
    text: str


@dataclass(frozen=True)
class Call(Node):
    """A filter function: search, startswith, within_distance, in_bbox."""
    name: str
    args: tuple[Node, ...]


# --- select and group_by expressions ---

@dataclass(frozen=True)
class Now(Node):
    """now(days=-7, hour=0, …): the query's instant, with absolute parts (singular names)
    set first, then relative shifts (plural names) added."""
    shifts: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class Aggregate(Node):
    func: str  # count, sum, avg, min, max, median, percentile, envelope
    arg: FieldRef | None  # None for count(*)
    distinct: bool = False  # count(distinct f)
    param: float | None = None  # percentile(f, p): p, from 0 to 100


@dataclass(frozen=True)
class DatePart(Node):
    part: str  # year, quarter, month, day, dayofweek, hour, minute, second, millisecond
    arg: FieldRef


@dataclass(frozen=True)
class Range(Node):
    """range(f, step): buckets [k*step, (k+1)*step[ keyed by their lower bound; range(f,
    EQUI(step, low, high)): the same from low to high only; range(f, [*,] b1, b2, … [, *]):
    the static buckets [b1, b2[, … keyed by a label, '*' opening the first or last."""
    arg: FieldRef
    step: float | None = None
    bounds: tuple[float, ...] = ()
    open_low: bool = False
    open_high: bool = False
    low: float | None = None  # EQUI's bounds
    high: float | None = None


@dataclass(frozen=True)
class DateFormat(Node):
    arg: FieldRef
    pattern: str


def render(node: Node) -> str:
    """The text a select or group_by expression is named by when it has no alias."""
    if isinstance(node, FieldRef):
        return node.name
    if isinstance(node, Aggregate):
        arg = ("distinct " if node.distinct else "") + (node.arg.name if node.arg else "*")
        return f"{node.func}({arg}, {number(node.param)})" if node.param is not None else f"{node.func}({arg})"
    if isinstance(node, Range):
        if node.step is not None:
            parts = [number(node.step)] if node.low is None else [f"equi({number(node.step)}, {number(node.low)}, {number(node.high)})"]
        else:
            parts = ["*"] * node.open_low + [number(b) for b in node.bounds] + ["*"] * node.open_high
        return f"range({node.arg.name}, {', '.join(parts)})"
    if isinstance(node, DatePart):
        return f"{node.part}({node.arg.name})"
    if isinstance(node, DateFormat):
        return f"date_format({node.arg.name}, '{node.pattern}')"
    raise TypeError(f"no name for {node!r}")


def number(value: float | None) -> str:
    """A number as a name shows it: 10, not 10.0."""
    return str(int(value)) if value is not None and float(value).is_integer() else str(value)
