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
class Aggregate(Node):
    func: str  # count, sum, avg, min, max
    arg: FieldRef | None  # None for count(*)


@dataclass(frozen=True)
class DatePart(Node):
    part: str  # year, month, day, hour, minute, second
    arg: FieldRef


@dataclass(frozen=True)
class DateFormat(Node):
    arg: FieldRef
    pattern: str


def render(node: Node) -> str:
    """The text a select or group_by expression is named by when it has no alias."""
    if isinstance(node, FieldRef):
        return node.name
    if isinstance(node, Aggregate):
        return f"{node.func}({node.arg.name if node.arg else '*'})"
    if isinstance(node, DatePart):
        return f"{node.part}({node.arg.name})"
    if isinstance(node, DateFormat):
        return f"date_format({node.arg.name}, '{node.pattern}')"
    raise TypeError(f"no name for {node!r}")
