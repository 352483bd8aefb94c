"""ODSQL, OpenDataSoft's query language, over exportd's Parquet datasets.

    where=    conditions, compiled to a pyarrow Expression pushed down to the scan (geometry
              filters, tested by shapely inside the scan, in `geometry`)
    select=   fields, aliases, * and aggregates (count, count(distinct), sum, avg, min, max,
              median, percentile, envelope)
    group_by= fields, date parts (year(f), month(f), ..., date_format(f, 'yyyy-MM')) and
              range(f, step), range(f, EQUI(step, low, high)), range(f, *, 10, 20, *)
    order_by= result columns, asc or desc
    refine= / exclude=  "facet:value" equality filters

Modules: `lexer` (text to tokens), `ast` (the syntax tree), `parser` (tokens to trees),
`values` (literals as Arrow scalars, dates, now()), `geometry` (geom'' literals and the
geometry filters), `compiler` (where trees to Expressions),
`select` (select, group_by, order_by), `runner` (scans, sorts and aggregates). Every malformed
or unsupported clause raises ODSQLError (HTTP 400) with the offending token's position.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from domain.fields import Field
from domain.odsql import ast, runner
from domain.odsql.compiler import Compiler, known
from domain.odsql.cost import MAX_TERMS, Budget, all_of
from domain.odsql.errors import ODSQLError
from domain.odsql.parser import parse_where
from domain.odsql.select import Select, SelectItem, parse_group_by, parse_order_by, parse_select
from domain.odsql.values import midnight, operand, parse_day, period_end, zone

__all__ = [
    "MAX_TERMS", "Budget", "ODSQLError", "Select", "all_of", "SelectItem", "compile_where", "count", "count_groups", "parse_group_by", "parse_order_by",
    "parse_select", "refine_exclude", "run", "scan_batches", "where_all",
]


def compile_where(text: str | None, fields: Sequence[Field], *, timezone: str = "UTC",
                  clause: str = "where", budget: Budget | None = None) -> pc.Expression | None:
    """The Expression of a where clause; None when `text` is empty. Date literals without an
    offset are read in `timezone`. Its terms are spent from `budget` (else a budget of its own)."""
    if text is None or not text.strip():
        return None
    node = parse_where(text, clause, budget)
    if node is None:
        return None
    return Compiler(fields, zone(timezone, clause), clause, timezone).compile(node)


def where_all(clauses: Sequence[str] | str | None, fields: Sequence[Field], *,
              timezone: str = "UTC", budget: Budget | None = None) -> pc.Expression | None:
    """Several where clauses (the API takes where= more than once), ANDed; one budget for all."""
    if isinstance(clauses, str):
        clauses = [clauses]
    budget = budget or Budget()
    return all_of(compile_where(text, fields, timezone=timezone, budget=budget) for text in clauses or ())


def refine_exclude(refine: Sequence[str] | None, exclude: Sequence[str] | None, fields: Sequence[Field], *,
                   timezone: str = "UTC", budget: Budget | None = None) -> pc.Expression | None:
    """"facet:value" filters, ANDed: a refine keeps the records whose field equals the value, an
    exclude drops them (and keeps records where the field is null). On a date or datetime field
    the value may be a year ("2024"), a month ("2024-06" or "2024/06") or a day."""
    by_name = {f.name: f for f in fields}
    tz = zone(timezone)
    budget = budget or Budget()
    parts = []
    for clause, values in (("refine", refine), ("exclude", exclude)):
        for text in values or ():
            budget.spend(0, clause)
            facet, sep, value = text.partition(":")
            if not sep:
                raise ODSQLError("expected FACET:VALUE", 0, clause)
            field = by_name.get(facet.strip())
            if field is None:
                raise ODSQLError(f"unknown field '{facet.strip()}'", 0, clause)
            literal = ast.Literal("string", value, pos=len(facet) + 1)
            day = parse_day(value) if field.type in ("date", "datetime") else None
            if day is None:
                column, scalar = operand(field, literal, tz, clause)
                matches = column == scalar
            else:
                start, end = day[0], period_end(*day)
                column = pc.field(field.name)
                if field.type == "date":
                    matches = (column >= pa.scalar(start)) & (column < pa.scalar(end))
                else:
                    matches = (column >= pa.scalar(midnight(start, tz))) & (column < pa.scalar(midnight(end, tz)))
            parts.append(matches if clause == "refine" else ~known(matches))
    return all_of(parts)


def run(source: pads.Dataset, fields: Sequence[Field], *, select: str | None = None,
        where: str | Sequence[str] | None = None, group_by: str | None = None, order_by: str | None = None,
        limit: int | None = None, offset: int = 0, timezone: str = "UTC",
        filter: pc.Expression | None = None) -> pa.Table:
    """The result of a query as a Table whose columns are named by the select aliases. With
    group_by or aggregates: the group keys, then the select items; a select of only aggregates
    without group_by gives one row. `filter`, an already compiled condition (where_all and
    refine_exclude), is ANDed with `where`."""
    if limit is not None and limit < 0 or offset < 0:
        raise ODSQLError("limit and offset must not be negative", 0, "limit")
    zone(timezone)
    condition = all_of([where_all(where, fields, timezone=timezone), filter])
    keys = parse_group_by(group_by, fields)
    if keys or parse_select(select, fields).aggregated:
        # without order_by, groups come in key order, and a page of them is taken in memory
        # that grows with the page, not with the number of groups
        first = offset + limit if limit is not None and not (order_by and order_by.strip()) else None
        table = runner.aggregate(source, fields, condition, select, keys, timezone, first=first)
        table = runner.sort_table(table, parse_order_by(order_by, table.column_names))
        return table.slice(offset, limit)
    projection = runner.plan(fields, select, order_by, timezone)
    return runner.collect(source, projection, condition, limit, offset)


def count_groups(source: pads.Dataset, fields: Sequence[Field], group_by: str | None, *, timezone: str = "UTC",
                 filter: pc.Expression | None = None) -> int:
    """How many groups `group_by` makes of the records matching `filter` (an already compiled
    condition); 1 without group_by, a plain aggregate's one row. Counted by the keys' hashes
    (runner.count_groups), 8 bytes a group."""
    keys = parse_group_by(group_by, fields)
    if not keys:
        return 1
    return runner.count_groups(source, fields, filter, keys, timezone)


def count(source: pads.Dataset, fields: Sequence[Field], where: str | Sequence[str] | None = None, *,
          timezone: str = "UTC", filter: pc.Expression | None = None) -> int:
    """How many records match `where` (and `filter`, an already compiled condition)."""
    condition = all_of([where_all(where, fields, timezone=timezone), filter])
    threads = runner.worth_threads(source)
    return source.count_rows(use_threads=threads) if condition is None else source.count_rows(filter=condition, use_threads=threads)


def scan_batches(source: pads.Dataset, fields: Sequence[Field], *, select: str | None = None,
                 where: str | Sequence[str] | None = None, order_by: str | None = None, limit: int | None = None,
                 batch_rows: int = runner.BATCH_ROWS, timezone: str = "UTC", filter: pc.Expression | None = None,
                 ) -> tuple[pa.Schema, list[Field], Iterator[pa.RecordBatch]]:
    """The schema, output fields and record batches of an export. select holds fields, aliases
    and * only. Without order_by the batches stream from the scan (at most `batch_rows` rows
    each, read lazily); with order_by, every matching record's selected and sort columns are
    read into memory and sorted, or only the top `limit` rows are kept when a limit is given.
    `filter`, an already compiled condition, is ANDed with `where`."""
    if limit is not None and limit < 0:
        raise ODSQLError("limit must not be negative", 0, "limit")
    condition = all_of([where_all(where, fields, timezone=timezone), filter])
    projection = runner.plan(fields, select, order_by, timezone, fields_only=True)
    scanned = source.scanner(columns=projection.columns).projected_schema
    schema = runner.output_schema(source, projection, scanned)
    batches = runner.stream(source, projection, condition, limit, batch_rows)
    return schema, projection.fields, (pa.RecordBatch.from_arrays(batch.columns, schema=schema) for batch in batches)
