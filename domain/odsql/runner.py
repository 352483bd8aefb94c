"""Runs ODSQL clauses over a pyarrow Dataset (one Parquet file per dataset version).

The filter and the projection are always pushed down to the scan (`Dataset.scanner(columns=
{alias: expression}, filter=...)`), so only the needed columns of the matching records are
read. Memory, by query shape:

- no order_by: batches stream through; `run` with a limit stops reading once it has
  offset + limit rows;
- order_by with a limit: a running top (offset + limit) is kept, so memory is bounded by
  offset + limit rows plus a few batches;
- order_by without a limit: every matching record's selected and sort columns are held in
  memory and sorted (what an ordered export of a whole dataset costs);
- aggregates and group_by: Acero's streaming hash aggregation; memory grows with the number
  of groups, not of records.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np
import shapely
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
from pyarrow import acero

from domain.fields import GEOMETRY_TYPES, METADATA_KEY, Field, with_fields
from domain.odsql import ast
from domain.odsql.errors import ODSQLError
from domain.odsql.cost import all_of
from domain.odsql.select import Select, SelectItem, parse_order_by, parse_select, project, range_filter, range_labels

BATCH_ROWS = 16 * 1024
# Streaming scans read one batch ahead, one file and one row group at a time, without
# pre-buffering (see _row_group_batches).
FLAT_SCAN = dict(batch_readahead=1, fragment_readahead=1,
                 fragment_scan_options=pads.ParquetFragmentScanOptions(pre_buffer=False))
_FUNCTIONS = {"count": "count", "sum": "sum", "avg": "mean", "min": "min", "max": "max"}
SortKeys = Sequence[tuple[str, str]]


@dataclass(frozen=True)
class Projection:
    """What a non-aggregate query reads: `columns` (output columns, then hidden sort columns)
    computed by the scan, the `output` names, the sort keys and the output fields."""
    columns: dict[str, pc.Expression]
    output: list[str]
    sort: tuple[tuple[str, str], ...]
    fields: list[Field]


def plan(fields: Sequence[Field], select: str | None, order_by: str | None, timezone: str,
         fields_only: bool = False) -> Projection:
    """The projection of a non-aggregate query. order_by may name an output column or any
    field (read as a hidden column). With `fields_only`, select may hold only fields."""
    by_name = {f.name: f for f in fields}
    chosen = parse_select(select, fields)
    if chosen.aggregated:
        item = next(i for i in chosen.items if isinstance(i.expression, ast.Aggregate))
        raise ODSQLError("an aggregate needs no other select items than aggregates, or a group_by",
                         item.expression.pos, "select")
    columns: dict[str, pc.Expression] = {}
    out_fields: list[Field] = []
    types: dict[str, str] = {}
    for item in chosen.items:
        expression = item.expression
        if fields_only and not isinstance(expression, ast.FieldRef):
            raise ODSQLError("only fields, aliases and * can be selected here", expression.pos, "select")
        if isinstance(expression, ast.Range):
            raise ODSQLError("range() is a group_by key: select it with that group_by", expression.pos, "select")
        columns[item.alias] = project(expression, by_name, timezone)
        if isinstance(expression, ast.FieldRef):
            source = by_name[expression.name]
            types[item.alias] = source.type
            out_fields.append(Field(item.alias, source.type, source.label))
        else:
            kind = "text" if isinstance(expression, ast.DateFormat) else "int"
            out_fields.append(Field(item.alias, kind))
    output = list(columns)
    sort = []
    for name, direction in parse_order_by(order_by, output + [n for n in by_name if n not in columns]):
        kind = types[name] if name in types else by_name[name].type if name not in columns else None
        if kind in GEOMETRY_TYPES:
            raise ODSQLError(f"cannot order by the geometry column '{name}'", 0, "order_by")
        if name not in columns:
            hidden = f"__order_by_{len(sort)}"
            columns[hidden] = pc.field(name)
            name = hidden
        sort.append((name, direction))
    return Projection(columns, output, tuple(sort), out_fields)


def top(batches: Iterator[pa.RecordBatch], schema: pa.Schema, sort: SortKeys, count: int) -> pa.Table:
    """The first `count` rows of `batches` in `sort` order, holding about 2 * count rows at a
    time. Arrow's sort is stable, so ties keep their scan order as a full sort would."""
    kept: list[pa.RecordBatch] = []
    held = 0
    table = schema.empty_table()
    for batch in batches:
        kept.append(batch)
        held += batch.num_rows
        if held > 2 * count + BATCH_ROWS:
            table = sort_table(pa.Table.from_batches(kept, schema), sort).slice(0, count)
            kept, held = list(table.to_batches()), table.num_rows
    if kept:
        table = sort_table(pa.Table.from_batches(kept, schema), sort).slice(0, count)
    return table


def sort_table(table: pa.Table, sort: SortKeys) -> pa.Table:
    if not sort or table.num_rows == 0:
        return table
    return table.take(pc.sort_indices(table, sort_keys=list(sort)))  # stable; nulls last


def collect(source: pads.Dataset, projection: Projection, condition: pc.Expression | None,
            limit: int | None, offset: int, batch_rows: int = BATCH_ROWS) -> pa.Table:
    """The rows of a non-aggregate query, sorted and sliced, output columns only."""
    scanner = source.scanner(columns=projection.columns, filter=condition, batch_size=batch_rows,
                             use_threads=worth_threads(source))
    if not projection.sort:
        table = scanner.head(offset + limit) if limit is not None else scanner.to_table()
    elif limit is not None:
        table = top(scanner.to_batches(), scanner.projected_schema, projection.sort, offset + limit)
    else:
        table = sort_table(scanner.to_table(), projection.sort)
    table = table.slice(offset, limit)
    return table.select(projection.output)


def stream(source: pads.Dataset, projection: Projection, condition: pc.Expression | None,
           limit: int | None, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """The batches of a non-aggregate query, read lazily: nothing is scanned before the first
    batch is asked for."""
    if projection.sort:
        for batch in collect(source, projection, condition, limit, 0, batch_rows).to_batches(max_chunksize=batch_rows):
            if batch.num_rows:
                yield batch
        return
    left = limit
    for batch in _row_group_batches(source, projection.columns, condition, batch_rows):
        if left is not None:
            if left <= 0:
                return
            batch = batch.slice(0, left)
            left -= batch.num_rows
        if batch.num_rows:
            yield batch.select(projection.output)


def worth_threads(source: pads.Dataset) -> bool:
    """Whether a scan of `source` gains by pyarrow's thread pool: not an in-memory dataset (a
    small version, domain/version_cache.py), where handing the work to the pool's threads cost
    more than the work."""
    return isinstance(source, pads.FileSystemDataset)


def _row_group_batches(source: pads.Dataset, columns, condition: pc.Expression | None,
                       batch_rows: int) -> Iterator[pa.RecordBatch]:
    """The scan, one row group at a time. pyarrow's scanner reads ahead of a slow consumer
    without bound (a 3M-row export peaked at 600 MiB, growing with the rows); scanning each
    row group on its own keeps at most one decoded row group in memory, however large the
    dataset (measured: 200 MiB peak RSS at 1M and at 3M rows)."""
    if not isinstance(source, pads.FileSystemDataset):  # an in-memory table: nothing to read ahead
        yield from source.scanner(columns=columns, filter=condition, batch_size=batch_rows,
                                  use_threads=worth_threads(source)).to_batches()
        return
    for fragment in source.get_fragments(filter=condition):
        for row_group in fragment.split_by_row_group(filter=condition, schema=source.schema):
            yield from row_group.to_batches(schema=source.schema, columns=columns, filter=condition,
                                            batch_size=batch_rows, **FLAT_SCAN)


def aggregate(source: pads.Dataset, fields: Sequence[Field], condition: pc.Expression | None,
              select: str | None, keys: tuple[SelectItem, ...], timezone: str, first: int | None = None) -> pa.Table:
    """One row per group of `keys` (one row in all without keys): the keys, then the select
    items; a non-aggregate select item must be one of the keys' expressions. With `first`, only
    the first groups in key order, computed in memory that grows with `first`, not with the
    number of groups (see first_groups). median, percentile and count(distinct) need every
    value of their group at once, so with them memory grows with the matching records."""
    by_name = {f.name: f for f in fields}
    chosen = parse_select(select, fields) if select and select.strip() else Select((), False)
    columns = {f"__key_{i}": project(k.expression, by_name, timezone) for i, k in enumerate(keys)}
    key_names = {k.expression: f"__key_{i}" for i, k in enumerate(keys)}
    ranges = [k.expression for k in keys if isinstance(k.expression, ast.Range)]
    condition = all_of([condition, *(range_filter(r) for r in ranges)])
    aggregates: list[tuple[str | list[str], str, pc.CountOptions | None, str]] = []
    finish: dict[str, Callable[[pa.Table], pa.Array]] = {}  # aggregated column -> its output
    output: dict[str, str] = {}  # output name -> column of the aggregated table
    for item in chosen.items:
        expression = item.expression
        if isinstance(expression, ast.Aggregate):
            name = f"__agg_{len(finish)}"
            finish[name] = _plan_aggregate(expression, name, columns, aggregates)
        elif expression in key_names:
            name = key_names[expression]
        else:
            raise ODSQLError(f"'{item.alias}' must be an aggregate or one of the group_by keys",
                             expression.pos, "select")
        output[item.alias] = name
    chosen_columns = set(output.values())
    leading = {k.alias: key_names[k.expression] for k in keys if key_names[k.expression] not in chosen_columns}
    clash = next((name for name in leading if name in output), None)
    if clash:
        raise ODSQLError(f"'{clash}' names both a group_by key and a select item", 0, "select")
    output = {**leading, **output}
    if not output:
        raise ODSQLError("nothing to compute: select aggregates or group_by keys", 0, "select")
    group_keys = list(key_names.values())
    whole = any(function in _WHOLE for _, function, _, _ in aggregates)
    if whole and not keys:  # no scalar form of these: one group of every record, keyed by a constant
        columns["__all"] = pc.scalar(True)
        group_keys = ["__all"]
    try:
        if keys and first is not None and not whole:
            schema = source.scanner(columns=columns).projected_schema
            batches = _row_group_batches(source, columns, condition, BATCH_ROWS)
            table = first_groups(batches, schema, group_keys, aggregates, first)
        else:
            scanner = source.scanner(columns=columns, filter=condition, use_threads=worth_threads(source))
            prefix = "hash_" if group_keys else ""
            table = _grouped(scanner.to_reader(), group_keys, [(t, prefix + f, o, n) for t, f, o, n in aggregates])
            if whole and not keys and table.num_rows == 0:
                table = _empty_row(table, aggregates)
            elif keys and first is not None:  # groups in key order, as first_groups gives them (ranges by bucket)
                table = sort_table(table, [(key, "ascending") for key in group_keys])
    except pa.ArrowInvalid as exc:  # a key past 64 bits (a range of huge integers, …)
        raise ODSQLError(f"cannot compute the groups ({exc})", 0, "group_by") from None
    labels = {key_names[r]: range_labels(r) for r in ranges if r.step is None}
    result = {}
    for alias, column in output.items():
        if column in finish:
            result[alias] = finish[column](table)
        elif column in labels:
            result[alias] = pc.take(labels[column], table[column])
        else:
            result[alias] = table[column]
    return pa.table(list(result.values()), names=list(result))


# aggregates computed from every value of a group (Acero's exact ones are not mergeable by batch)
_WHOLE = ("list", "count_distinct")


def _plan_aggregate(node: ast.Aggregate, name: str, columns: dict[str, pc.Expression],
                    aggregates: list) -> Callable[[pa.Table], pa.Array]:
    """Adds the Acero aggregates that `node` needs (their inputs to `columns`) and returns how
    its output column is made of the aggregated table."""
    if node.arg is None:
        aggregates.append(([], "count_all", None, name))
        return lambda table: table[name]
    if node.func == "envelope":
        for part, function in (("lon", "min"), ("lat", "min"), ("lon", "max"), ("lat", "max")):
            columns[f"{name}__{function}_{part}"] = pc.field(node.arg.name, part)
            aggregates.append((f"{name}__{function}_{part}", function, None, f"{name}__{function}_{part}"))
        return lambda table: envelopes(*(table[f"{name}__{f}_{p}"] for f, p in
                                         (("min", "lon"), ("min", "lat"), ("max", "lon"), ("max", "lat"))))
    columns[name] = pc.field(node.arg.name)
    if node.func in ("median", "percentile"):
        aggregates.append((name, "list", None, name))
        share = 0.5 if node.func == "median" else float(node.param or 0) / 100
        return lambda table: quantiles(table[name], share)
    if node.distinct:
        aggregates.append((name, "count_distinct", pc.CountOptions("only_valid"), name))
    else:
        function = _FUNCTIONS[node.func]
        aggregates.append((name, function, pc.CountOptions("only_valid") if function == "count" else None, name))
    return lambda table: table[name]


def _empty_row(table: pa.Table, aggregates: list) -> pa.Table:
    """The one row of a plain aggregate over no record: counts 0, everything else null."""
    counts = {n for _, f, _, n in aggregates if f in ("count", "count_all", "count_distinct")}
    return pa.table({column.name: pa.array([0], column.type) if column.name in counts else pa.nulls(1, column.type)
                     for column in table.schema})


def quantiles(lists: pa.ChunkedArray | pa.Array, share: float) -> pa.Array:
    """The `share` quantile of each list's non-null values, interpolated linearly between the
    two nearest ranks (SQL's percentile_cont); null for a list without values."""
    lists = lists.combine_chunks() if isinstance(lists, pa.ChunkedArray) else lists
    count = len(lists)
    values = pc.list_flatten(lists)
    parents = pc.list_parent_indices(lists)
    valid = pc.is_valid(values)
    values = pc.cast(pc.filter(values, valid), pa.float64()).to_numpy(zero_copy_only=False)
    parents = pc.filter(parents, valid).to_numpy(zero_copy_only=False)
    order = np.lexsort((values, parents))
    values, parents = values[order], parents[order]
    sizes = np.bincount(parents, minlength=count) if count else np.zeros(0, np.int64)
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.int64) if count else sizes
    position = share * np.maximum(sizes - 1, 0)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, np.maximum(sizes - 1, 0))
    empty = sizes == 0
    below = values[np.where(empty, 0, starts + low)] if len(values) else np.zeros(count)
    above = values[np.where(empty, 0, starts + high)] if len(values) else np.zeros(count)
    return pa.array(below + (above - below) * (position - low), pa.float64(), mask=empty)


def envelopes(west, south, east, north) -> pa.Array:
    """Each group's envelope (bounding box) of points as WKB: a point when all its points are
    one, a polygon otherwise (shapely's envelope of the same points); null without points."""
    corners = np.stack([np.stack([_numbers(west), _numbers(south)], axis=-1),
                        np.stack([_numbers(east), _numbers(north)], axis=-1)], axis=1)
    empty = np.isnan(corners).any(axis=(1, 2))
    shapes = shapely.envelope(shapely.multipoints(np.nan_to_num(corners)))
    return pa.array(shapely.to_wkb(shapes), pa.binary(), mask=empty)


def _numbers(column) -> np.ndarray:
    return pc.fill_null(pc.cast(column, pa.float64()), math.nan).to_numpy(zero_copy_only=False)


def _grouped(source: pa.RecordBatchReader | pa.Table, keys: list[str], aggregates: list) -> pa.Table:
    """Acero's hash aggregation of `source`: a reader, streamed, or a small table, on this thread."""
    if isinstance(source, pa.Table):
        node = acero.Declaration("table_source", acero.TableSourceNodeOptions(source))
    else:
        node = acero.Declaration("record_batch_reader_source", acero.RecordBatchReaderSourceNodeOptions(source))
    return acero.Declaration.from_sequence([
        node, acero.Declaration("aggregate", acero.AggregateNodeOptions(aggregates, keys=keys)),
    ]).to_table(use_threads=not isinstance(source, pa.Table))


# How each aggregate is taken over a batch, and how the partial results of batches combine.
_PARTIAL = {"count_all": ("hash_count_all", "hash_sum"), "count": ("hash_count", "hash_sum"),
            "sum": ("hash_sum", "hash_sum"), "min": ("hash_min", "hash_min"), "max": ("hash_max", "hash_max")}


def first_groups(batches: Iterator[pa.RecordBatch], schema: pa.Schema, keys: list[str], aggregates: list,
                 first: int) -> pa.Table:
    """The `first` groups in key order (ascending, nulls last) with their aggregates, sorted so.

    Each batch is aggregated on its own and its partial results merged into the running ones,
    which keep only the `first` smallest keys: a key past them can never come back among the
    first, as the cutoff only moves down. So memory holds `first` groups and a batch however
    many groups there are, where one hash aggregation of a million groups held them all. A mean
    is kept as its sum and count."""
    per_batch: list[tuple] = []
    merge: list[tuple] = []
    means: dict[str, tuple[str, str]] = {}
    for target, function, options, name in aggregates:
        if function == "mean":
            means[name] = (f"{name}__sum", f"{name}__count")
            per_batch += [(target, "hash_sum", None, f"{name}__sum"),
                          (target, "hash_count", pc.CountOptions("only_valid"), f"{name}__count")]
            merge += [(f"{name}__sum", "hash_sum", None, f"{name}__sum"), (f"{name}__count", "hash_sum", None, f"{name}__count")]
        else:
            batch_function, merge_function = _PARTIAL[function]
            per_batch.append((target, batch_function, options, name))
            merge.append((name, merge_function, None, name))
    order = [(key, "ascending") for key in keys]
    running: pa.Table | None = None
    for batch in batches:
        if not batch.num_rows:
            continue
        partial = _grouped(pa.Table.from_batches([batch]), keys, per_batch)
        running = partial if running is None else _grouped(pa.concat_tables([running, partial]), keys, merge)
        if running.num_rows > first:
            running = sort_table(running, order).slice(0, first)
    if running is None:  # no records: the groups' columns, typed, and no row
        running = _grouped(schema.empty_table(), keys, per_batch)
    running = sort_table(running, order)
    for name, (total, count) in means.items():  # no value counted: the sum is null, and so the mean
        running = running.append_column(name, pc.divide(pc.cast(running[total], pa.float64()),
                                                        pc.cast(running[count], pa.float64())))
    return running


def output_schema(source: pads.Dataset, projection: Projection, scanned: pa.Schema) -> pa.Schema:
    """The schema of the streamed batches, with the output fields in its exportd metadata and
    the source's other metadata (e.g. GeoParquet's) kept."""
    schema = pa.schema([scanned.field(name) for name in projection.output])
    metadata = {k: v for k, v in (source.schema.metadata or {}).items() if k != METADATA_KEY}
    return with_fields(schema.with_metadata(metadata), projection.fields)


def count_groups(source: pads.Dataset, fields: Sequence[Field], condition: pc.Expression | None,
                 keys: tuple[SelectItem, ...], timezone: str) -> int:
    """How many groups `keys` make of the records matching `condition`, in memory of 8 bytes a
    record and a batch: each record's keys are hashed (64 bits, polars' hash_rows, the same for
    the same keys in any batch), and the distinct hashes counted. Two groups whose hashes
    collided would count once; at a million groups the odds are below one in ten million."""
    by_name = {f.name: f for f in fields}
    columns = {f"__key_{i}": project(k.expression, by_name, timezone) for i, k in enumerate(keys)}
    hashes = [pl.from_arrow(pa.Table.from_batches([batch])).hash_rows(seed=0).to_numpy()
              for batch in _row_group_batches(source, columns, condition, BATCH_ROWS) if batch.num_rows]
    if not hashes:
        return 0
    everything = np.concatenate(hashes)
    del hashes
    everything.sort()
    return int(np.count_nonzero(everything[1:] != everything[:-1])) + 1
