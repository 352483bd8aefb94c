"""The select, group_by and order_by clauses: parsed and checked against the dataset's fields,
and the projections (fields, date parts, date_format) as Expressions."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from domain.fields import Field
from domain.odsql import ast
from domain.odsql.cost import Budget
from domain.odsql.errors import ODSQLError
from domain.odsql.parser import Parser

NUMERIC = ("int", "double")
ORDERED = ("int", "double", "date", "datetime", "text")
DATES = ("date", "datetime")
CALENDAR_PARTS = ("year", "quarter", "month", "day", "dayofweek")  # the parts a date field has too
_JAVA_DATE = re.compile(r"yyyy|yy|MM|dd|HH|mm|ss")
_STRFTIME = {"yyyy": "%Y", "yy": "%y", "MM": "%m", "dd": "%d", "HH": "%H", "mm": "%M", "ss": "%S"}


@dataclass(frozen=True)
class SelectItem:
    expression: ast.Node  # FieldRef, Aggregate, DatePart or DateFormat
    alias: str  # the output column's name


@dataclass(frozen=True)
class Select:
    items: tuple[SelectItem, ...]
    aggregated: bool  # whether any item is an aggregate

    @property
    def names(self) -> list[str]:
        return [item.alias for item in self.items]


def check(node: ast.Node, fields: dict[str, Field], clause: str) -> None:
    """ODSQLError unless `node` names known fields of types its function accepts."""
    def need(ref: ast.FieldRef, types: Sequence[str], what: str) -> None:
        field = fields.get(ref.name)
        if field is None:
            raise ODSQLError(f"unknown field '{ref.name}'", ref.pos, clause)
        if types and field.type not in types:
            raise ODSQLError(f"{what} cannot take the {field.type} field '{ref.name}'", ref.pos, clause)

    if isinstance(node, ast.FieldRef):
        need(node, (), "")
    elif isinstance(node, ast.Aggregate) and node.arg is not None:
        types = {"sum": NUMERIC, "avg": NUMERIC, "min": ORDERED, "max": ORDERED, "median": NUMERIC,
                 "percentile": NUMERIC, "envelope": ("geo_point_2d",)}.get(node.func, ())
        if node.distinct:
            types = ORDERED + ("boolean",)
        need(node.arg, types, f"{node.func}()")
    elif isinstance(node, ast.Range):
        need(node.arg, NUMERIC, "range()")
    elif isinstance(node, ast.DatePart):
        need(node.arg, DATES if node.part in CALENDAR_PARTS else ("datetime",), f"{node.part}()")
    elif isinstance(node, ast.DateFormat):
        need(node.arg, DATES, "date_format()")


def project(node: ast.Node, fields: dict[str, Field], timezone: str) -> pc.Expression:
    """The Expression computing a non-aggregate select or group_by expression per record; date
    parts and formats of datetime fields are taken in `timezone`."""
    if isinstance(node, ast.FieldRef):
        return pc.field(node.name)
    if isinstance(node, ast.Range):
        return range_key(node, fields[node.arg.name])
    if isinstance(node, (ast.DatePart, ast.DateFormat)):
        column = pc.field(node.arg.name)
        if fields[node.arg.name].type == "datetime":
            column = column.cast(pa.timestamp("us", timezone))
        if isinstance(node, ast.DatePart):
            if node.part == "dayofweek":  # ISO: Monday 1 to Sunday 7
                return pc.day_of_week(column, count_from_zero=False, week_start=1)
            return getattr(pc, node.part)(column)
        if fields[node.arg.name].type == "date":
            column = column.cast(pa.timestamp("s"))
        return pc.strftime(column, format=strftime_pattern(node.pattern))
    raise TypeError(f"not a projection: {node!r}")


def range_key(node: ast.Range, field: Field) -> pc.Expression:
    """The group key of a range(): a step bucket's lower bound (an int on an int field with a
    whole step), or a static bucket's index, which range_labels names after grouping."""
    column = pc.field(field.name)
    if node.step is not None:
        origin = node.low or 0.0
        steps = pc.floor(pc.divide(pc.subtract(as_double(column), origin), node.step))
        key = pc.add(pc.multiply(steps, node.step), origin)
        whole = field.type == "int" and float(node.step).is_integer() and float(origin).is_integer()
        return key.cast(pa.int64()) if whole else key
    numbers = as_double(column)
    return sum_of([numbers >= bound for bound in node.bounds]).cast(pa.int64())


def as_double(column: pc.Expression) -> pc.Expression:
    """A numeric column as doubles, integers past 2**53 rounded (as the buckets' bounds are)."""
    return column.cast(pa.float64(), safe=False)


def sum_of(parts: list[pc.Expression]) -> pc.Expression:
    """The balanced sum of boolean Expressions as integers."""
    level = [p.cast(pa.int64()) for p in parts]
    while len(level) > 1:
        level = [pc.add(a, b) for a, b in zip(level[::2], level[1::2])] + ([level[-1]] if len(level) % 2 else [])
    return level[0]


def range_filter(node: ast.Range) -> pc.Expression | None:
    """The records a range() key keeps: nulls (their own group) and values inside its buckets."""
    column = as_double(pc.field(node.arg.name))
    if node.step is not None:
        if node.low is None:
            return None
        inside = (column >= node.low) & (column < node.high)
    else:
        low = None if node.open_low else column >= node.bounds[0]
        high = None if node.open_high else column < node.bounds[-1]
        if low is None and high is None:
            return None
        inside = low & high if low is not None and high is not None else low if low is not None else high
    return pc.field(node.arg.name).is_null() | inside


def range_labels(node: ast.Range) -> pa.Array:
    """A static range's bucket names by index: '[*, b1[', '[b1, b2[', …, '[bn, *['."""
    shown = [ast.number(b) for b in node.bounds]
    return pa.array([f"[*, {shown[0]}["] + [f"[{a}, {b}[" for a, b in zip(shown, shown[1:])] + [f"[{shown[-1]}, *["])


def strftime_pattern(pattern: str) -> str:
    """A date_format pattern (Java style: yyyy-MM-dd HH:mm:ss) as strftime's; a pattern that
    already holds '%' is taken as strftime's own."""
    if "%" in pattern:
        return pattern
    return _JAVA_DATE.sub(lambda m: _STRFTIME[m.group()], pattern)


def _item(parser: Parser, fields: dict[str, Field]) -> list[SelectItem]:
    """One select item; `*` gives every field."""
    expression = parser.expression()
    if isinstance(expression, ast.Star):
        return [SelectItem(ast.FieldRef(name, pos=expression.pos), name) for name in fields]
    check(expression, fields, parser.clause)
    alias = parser.alias()
    return [SelectItem(expression, alias or ast.render(expression))]


def parse_select(text: str | None, fields: Sequence[Field], budget: Budget | None = None) -> Select:
    """The select clause: None, "" and "*" select every field under its own name; "a, b as
    bee, *" puts a and bee first, then every field not yet output under its name."""
    by_name = {f.name: f for f in fields}
    if not text or not text.strip():
        text = "*"
    parser = Parser(text, "select", budget)
    items: list[SelectItem] = []
    seen: set[str] = set()
    for group in parser.items(lambda: (parser.token, _item(parser, by_name))):
        token, found = group
        starred = token.is_punct("*")
        for item in found:
            if item.alias in seen:
                if starred:
                    continue
                raise ODSQLError(f"duplicate output name '{item.alias}'", token.pos, "select")
            seen.add(item.alias)
            items.append(item)
    aggregated = any(isinstance(item.expression, ast.Aggregate) for item in items)
    return Select(tuple(items), aggregated)


def parse_group_by(text: str | None, fields: Sequence[Field], budget: Budget | None = None) -> tuple[SelectItem, ...]:
    """The group_by keys: fields, year/month/day/hour/minute/second(f) and
    date_format(f, 'yyyy-MM'), each with an optional alias."""
    if not text or not text.strip():
        return ()
    by_name = {f.name: f for f in fields}
    parser = Parser(text, "group_by", budget)

    def key() -> SelectItem:
        token = parser.token
        expression = parser.expression()
        if isinstance(expression, (ast.Star, ast.Aggregate)):
            raise ODSQLError(f"cannot group by {token.show()}", token.pos, "group_by")
        check(expression, by_name, "group_by")
        if isinstance(expression, ast.FieldRef) and by_name[expression.name].type in ("geo_point_2d", "geo_shape"):
            raise ODSQLError(f"cannot group by the geometry field '{expression.name}'", token.pos, "group_by")
        return SelectItem(expression, parser.alias() or ast.render(expression))

    keys = parser.items(key)
    names = [k.alias for k in keys]
    for k in keys:
        if names.count(k.alias) > 1:
            raise ODSQLError(f"duplicate group_by name '{k.alias}'", k.expression.pos, "group_by")
    return tuple(keys)


def parse_order_by(text: str | None, names: Sequence[str], budget: Budget | None = None) -> tuple[tuple[str, str], ...]:
    """(column, "ascending" | "descending") pairs; a column is one of `names` (the result's
    columns, aliases included), named directly or by its expression (`count(*) desc`)."""
    if not text or not text.strip():
        return ()
    parser = Parser(text, "order_by", budget)

    def key() -> tuple[str, str]:
        token = parser.token
        expression = parser.expression()
        name = None if isinstance(expression, ast.Star) else ast.render(expression)
        if name not in names:
            raise ODSQLError(f"cannot order by {token.show()}: not a column of the result", token.pos, "order_by")
        direction = parser.accept_keyword("asc", "desc")
        return name, "descending" if direction and direction.value.lower() == "desc" else "ascending"

    return tuple(parser.items(key))
