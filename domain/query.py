"""A query over a dataset's records — ODSQL select, where, refine/exclude, group_by, order_by
and limit — as the Explore API's parameters, an OSDI export's records URL or its JSON body
give it, and the runs of it: a page of records, a count, or a streamed scan for exports.

The filter and the projection are pushed down to the Parquet scan (domain.odsql compiles
them); exports stream record batches and never hold the whole dataset.
"""
from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from typing import Any, Collection, Iterator, Mapping

import polars as pl
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs

from domain import odsql
from domain.odsql.ast import FieldRef
from domain.errors import Invalid
from domain.fields import Field, fields_for
from domain.timeutil import zone_named

BATCH_ROWS = 16 * 1024
# polars' Parquet reader prefetches row groups ahead of what reads Scan.lazy: by default enough
# to take a 10,000,000-row Parquet export to 395 MiB peak RSS; one row group ahead, 330 MiB
os.environ.setdefault("POLARS_ROW_GROUP_PREFETCH_SIZE", "1")


def timezone_param(params: Mapping[str, str]) -> str:
    name = params.get("timezone") or "UTC"
    if zone_named(name) is None:
        raise Invalid(f"unknown time zone {name!r}", error_code="InvalidParameter")
    return name


def _texts(value: Any, name: str) -> tuple[str, ...]:
    """One string or a list of them (repeated parameters, JSON lists)."""
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(v for v in value if v.strip())
    raise Invalid(f"query {name!r} must be a string or a list of strings")


@dataclass(frozen=True)
class RecordQuery:
    select: str | None = None
    where: tuple[str, ...] = ()
    refine: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    group_by: str | None = None
    order_by: str | None = None
    limit: int | None = None  # None: every record

    FILTER_PARAMS = ("where", "refine", "exclude")
    RECORDS_PARAMS = FILTER_PARAMS + ("select", "group_by", "order_by")
    EXPORT_PARAMS = RECORDS_PARAMS + ("limit",)

    @classmethod
    def from_params(cls, params: Any, allowed: tuple[str, ...] = EXPORT_PARAMS) -> "RecordQuery":
        """From query-string parameters (a MultiDict: where, refine and exclude may repeat);
        other parameters are left to the caller."""
        def many(name: str) -> tuple[str, ...]:
            if name not in allowed:
                return ()
            values = params.getall(name, []) if hasattr(params, "getall") else _texts(params.get(name), name)
            return tuple(v for v in values if v.strip())

        def one(name: str) -> str | None:
            return (params.get(name) or None) if name in allowed else None

        return cls(select=one("select"), where=many("where"), refine=many("refine"), exclude=many("exclude"),
                   group_by=one("group_by"), order_by=one("order_by"), limit=_limit(one("limit")))

    @classmethod
    def from_json(cls, body: Mapping[str, Any] | None) -> "RecordQuery":
        """From an OSDI export's `query` object; select may also be a list of field names."""
        body = dict(body or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(body) - known)
        if unknown:
            raise Invalid(f"unknown query parameter(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        select = body.get("select")
        if isinstance(select, list):
            if not all(isinstance(s, str) for s in select):
                raise Invalid("query 'select' must be ODSQL text or a list of field names")
            select = ", ".join(f"`{s}`" for s in select)
        elif select is not None and not isinstance(select, str):
            raise Invalid("query 'select' must be ODSQL text or a list of field names")
        for name in ("group_by", "order_by"):
            if body.get(name) is not None and not isinstance(body[name], str):
                raise Invalid(f"query {name!r} must be ODSQL text")
        return cls(select=select or None, where=_texts(body.get("where"), "where"), refine=_texts(body.get("refine"), "refine"),
                   exclude=_texts(body.get("exclude"), "exclude"), group_by=body.get("group_by") or None,
                   order_by=body.get("order_by") or None, limit=_limit(body.get("limit")))

    def merged(self, other: "RecordQuery") -> "RecordQuery":
        """This query with `other`'s parts added (filters ANDed; other's select, order and limit win)."""
        return RecordQuery(
            select=other.select or self.select, where=self.where + other.where, refine=self.refine + other.refine,
            exclude=self.exclude + other.exclude, group_by=other.group_by or self.group_by,
            order_by=other.order_by or self.order_by, limit=other.limit if other.limit is not None else self.limit,
        )

    def with_grouping(self, select: str, group_by: str, order_by: str) -> "RecordQuery":
        return dataclasses.replace(self, select=select, group_by=group_by, order_by=order_by)

    def as_dict(self) -> dict[str, Any]:
        # not dataclasses.asdict, which deep-copies every value (here texts, tuples of texts and
        # an int): 50 µs, paid by each POST and each export a few times
        return {k: list(v) if isinstance(v, tuple) else v for k, v in vars(self).items() if v not in (None, ())}

    @property
    def aggregated(self) -> bool:
        return bool(self.group_by)

    @property
    def heavy(self) -> bool:
        """Whether running it may group or sort every matching record (a group_by, an order_by,
        or a select whose parentheses may hold an aggregate): told from the text alone."""
        return bool(self.group_by or self.order_by or (self.select and "(" in self.select))

    def filter(self, fields: list[Field], budget: odsql.Budget | None = None) -> pads.Expression | None:
        budget = budget or odsql.Budget()
        return odsql.all_of([odsql.where_all(list(self.where), fields, budget=budget),
                             odsql.refine_exclude(list(self.refine), list(self.exclude), fields, budget=budget)])

    def validate(self, fields: list[Field]) -> pads.Expression | None:
        """Compile every part now, against one term budget for the whole query: a malformed or
        too costly query is a 400 before any work. The filter."""
        budget = odsql.Budget()
        condition = self.filter(fields, budget)
        select = odsql.parse_select(self.select, fields, budget)
        group = odsql.parse_group_by(self.group_by, fields, budget)
        names = [item.alias for item in select.items] + [item.alias for item in group] + [f.name for f in fields]
        odsql.parse_order_by(self.order_by, names, budget)
        return condition

    def count(self, source: pads.Dataset, fields: list[Field]) -> int:
        return odsql.count(source, fields, filter=self.filter(fields))

    def groups(self, source: pads.Dataset, fields: list[Field], shown: int, limit: int, offset: int) -> int:
        """How many groups (of an aggregated query) there are, `shown` being those of the page
        at `offset` (`limit` at most): a page that is not full, and not past the end, tells it
        without a second pass."""
        if shown < limit and (shown or not offset):
            return offset + shown
        return odsql.count_groups(source, fields, self.group_by, filter=self.filter(fields))

    def table(self, source: pads.Dataset, fields: list[Field], limit: int | None = None, offset: int = 0) -> pa.Table:
        """A bounded result (a page of records, aggregates)."""
        limits = [n for n in (limit, self.limit) if n is not None]
        return odsql.run(source, fields, select=self.select, filter=self.filter(fields), group_by=self.group_by,
                         order_by=self.order_by, limit=min(limits) if limits else None, offset=offset)

    def scan(self, source: pads.Dataset, fields: list[Field], batch_rows: int = BATCH_ROWS) -> "Scan":
        return Scan(self, source, fields, batch_rows)


MAX_LIMIT = 1_000_000_000  # no dataset holds more records; keeps every count within 64 bits
_INTEGER = re.compile(r"-?[0-9]{1,19}")


def _limit(raw: Any) -> int | None:
    """A limit from a JSON body (an integer) or a query string (its digits); -1 or none: every record."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    elif isinstance(raw, str) and _INTEGER.fullmatch(raw.strip()):
        value = int(raw)
    else:
        raise Invalid(f"query 'limit' must be an integer, not {raw!r}", error_code="InvalidParameter", field="limit")
    if not -1 <= value <= MAX_LIMIT:
        raise Invalid(f"query 'limit' must be -1 (every record) or from 0 to {MAX_LIMIT}, not {value}",
                      error_code="InvalidParameter", field="limit")
    return None if value == -1 else value


class Scan:
    """The records a query selects, as batches, for a writer: schema and fields of the output
    columns are known before the first batch."""

    def __init__(self, query: RecordQuery, source: pads.Dataset, fields: list[Field], batch_rows: int = BATCH_ROWS):
        self.query, self.source, self.dataset_fields, self.batch_rows = query, source, fields, batch_rows
        self.condition = query.validate(fields)
        self.selected = odsql.parse_select(query.select, fields)
        self.aggregated = query.aggregated or self.selected.aggregated
        if self.aggregated:
            table = query.table(source, fields)
            self.schema, self.fields = table.schema, fields_for(table.schema, fields)
            self._batches: Iterator[pa.RecordBatch] | None = iter(table.to_batches(max_chunksize=batch_rows))
            self._count = table.num_rows
        else:
            self.schema, self.fields, self._batches = odsql.scan_batches(
                source, fields, select=query.select, filter=self.condition, order_by=query.order_by,
                limit=query.limit, batch_rows=batch_rows)
            self._count = None

    def projected(self, names: Collection[str] | None) -> "Scan":
        """This scan reading only the output columns in `names` (and those order_by names), in
        their order here: for a format whose output depends on no others. The filter still
        reads every column it names, and the count is the same. Itself when `names` is None or
        keeps every column, and for an aggregate (already computed)."""
        if names is None or self.aggregated:
            return self
        assert self._batches is not None, "a scan is projected before it is read"
        sorted_by = {name for name, _ in odsql.parse_order_by(
            self.query.order_by, self.selected.names + [f.name for f in self.dataset_fields])}
        kept = [item for item in self.selected.items if item.alias in names or item.alias in sorted_by]
        if not kept or len(kept) == len(self.selected.items):
            return self
        select = ", ".join(f"`{item.expression.name}` as `{item.alias}`" for item in kept)
        narrowed = Scan(dataclasses.replace(self.query, select=select), self.source, self.dataset_fields, self.batch_rows)
        narrowed._count = self._count
        return narrowed

    def count(self) -> int:
        if self._count is None:
            total = odsql.count(self.source, self.dataset_fields, filter=self.condition)
            self._count = total if self.query.limit is None else min(total, self.query.limit)
        return self._count

    def lazy(self) -> pl.LazyFrame | None:
        """The records as a polars LazyFrame over polars' own Parquet reader, for a writer
        that hands them to polars anyway (pyarrow's reader and the conversion cost a Parquet
        export a third of its time): for a scan of every record of local Parquet files, its
        columns at most renamed, in stored order, that polars reads as the Arrow schema says.
        None for any other scan, whose batches() are read instead. Either reads the scan."""
        assert self._batches is not None, "a scan is read once"
        source = self.source
        if (self.aggregated or self.query.order_by or self.condition is not None
                or not isinstance(source, pads.FileSystemDataset) or not isinstance(source.format, pads.ParquetFileFormat)
                or not isinstance(source.filesystem, pafs.LocalFileSystem)
                or not all(isinstance(item.expression, FieldRef) for item in self.selected.items)):
            return None
        frame = pl.scan_parquet(source.files).select(
            pl.col(item.expression.name).alias(item.alias) for item in self.selected.items)
        if self.query.limit is not None:
            frame = frame.head(self.query.limit)
        if frame.collect_schema() != pl.from_arrow(self.schema.empty_table()).schema:
            return None
        self._batches = None
        return frame

    def batches(self) -> Iterator[pa.RecordBatch]:
        assert self._batches is not None, "a scan is read once"
        batches, self._batches = self._batches, None
        for batch in batches:
            if batch.num_rows:
                yield batch
