"""JSON (one array of records) and JSON Lines (one record a line), values as OpenDataSoft's
JSON export gives them: datetimes as ISO 8601 with offset, dates as YYYY-MM-DD,
geo_point_2d as {"lon", "lat"}, geo_shape as a GeoJSON geometry.

Records are built as text column by column with pyarrow.compute (see MEASUREMENTS.md: per-row
Python is the cost of every format): each column becomes the JSON text of its values
(`json_texts`), then one `binary_join_element_wise` puts keys and values together per record
and the batch's buffer is written as it is. Strings are escaped as orjson escapes them (quote,
backslash, control characters; other characters stay raw UTF-8); NaN and ±inf become null as
orjson writes them; a double keeps a `.0` or an exponent so it reads back as a float. Arrow
types without a vectorised rendering fall back to orjson value by value."""
from __future__ import annotations

import io
from typing import Any, Iterator, Sequence

import numpy as np
import orjson
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from formats.base import Format, Writer
from formats.parallel import OrderedRendering, PolarsSink
from formats.values import date_strings, datetime_strings, shape_geojson_strings

NEEDS_ESCAPE = r'["\\\x00-\x1f]'
SHORT_ESCAPES = (("\\", "\\\\"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"),
                 ("\b", "\\b"), ("\f", "\\f"))
OTHER_CONTROLS = [chr(c) for c in range(0x20) if chr(c) not in "\n\r\t\b\f"]


def json_columns(batch: pa.RecordBatch, fields, timezone: str) -> list[list[Any]]:
    """Each column as a list of JSON-ready Python values, the costly types rendered vectorised."""
    columns: list[list[Any]] = []
    for i, field in enumerate(fields):
        column = batch.column(i)
        if field.type == "datetime":
            values = datetime_strings(column, timezone).to_pylist()
        elif field.type == "date":
            values = date_strings(column).to_pylist()
        elif field.type == "geo_shape":
            values = [None if s is None else orjson.Fragment(s) for s in shape_geojson_strings(column).to_pylist()]
        else:
            values = column.to_pylist()
        columns.append(values)
    return columns


def records(batch: pa.RecordBatch, fields, names: list[str], timezone: str) -> Iterator[dict[str, Any]]:
    for row in zip(*json_columns(batch, fields, timezone)):
        yield dict(zip(names, row))


def _escape(text: pa.Array) -> pa.Array:
    """The characters JSON strings cannot hold raw, escaped, in the values that have any."""
    needs = pc.fill_null(pc.match_substring_regex(text, NEEDS_ESCAPE), False)
    if not pc.any(needs).as_py():
        return text
    subset = text.filter(needs)
    for char, escaped in SHORT_ESCAPES:
        subset = pc.replace_substring(subset, char, escaped)
    if pc.any(pc.match_substring_regex(subset, "[\x00-\x1f]")).as_py():
        for char in OTHER_CONTROLS:
            subset = pc.replace_substring(subset, char, f"\\u{ord(char):04x}")
    return pc.replace_with_mask(text, needs, subset)


def quoted(text: pa.Array) -> pa.Array:
    """JSON strings of a string column; null stays null."""
    return pc.binary_join_element_wise('"', _escape(text.cast(pa.string())), '"', "")


def number_texts(column: pa.Array) -> pa.Array:
    """JSON numbers of a floating-point column: null for null, NaN and ±inf; integral values
    keep a `.0` so they read back as floats."""
    column = column.cast(pa.float64())
    text = pc.if_else(pc.is_finite(column), column.cast(pa.string()), pa.scalar(None, pa.string()))
    integral = pc.match_substring_regex(text, r"^-?[0-9]+$")
    return pc.if_else(integral, pc.binary_join_element_wise(text, ".0", ""), text)


def _fallback(column: pa.Array) -> pa.Array:
    """orjson, value by value: for Arrow types no vectorised rendering covers."""
    return pa.array([None if v is None else orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS).decode()
                     for v in column.to_pylist()], pa.string())


def value_texts(column: pa.Array) -> pa.Array:
    """JSON text of each value of an Arrow column by its Arrow type; null where null."""
    t = column.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return quoted(column)
    if pa.types.is_integer(t) or pa.types.is_boolean(t):
        return column.cast(pa.string())
    if pa.types.is_floating(t):
        return number_texts(column)
    if pa.types.is_date(t):
        return quoted(date_strings(column))
    if pa.types.is_timestamp(t):
        return quoted(datetime_strings(column))
    if pa.types.is_struct(t):
        parts: list[Any] = ["{"]
        for i in range(t.num_fields):
            parts += [("," if i else "") + orjson.dumps(t.field(i).name).decode() + ":",
                      pc.fill_null(value_texts(column.field(i)), "null")]
        text = pc.binary_join_element_wise(*parts, "}", "")
        return pc.if_else(column.is_valid(), text, pa.scalar(None, pa.string()))
    if (pa.types.is_list(t) or pa.types.is_large_list(t)) and not isinstance(column, pa.ChunkedArray):
        items = pc.fill_null(value_texts(column.flatten()), "null")
        lengths = pc.fill_null(pc.list_value_length(column), 0).to_numpy(zero_copy_only=False)
        offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]), pa.int32() if pa.types.is_list(t) else pa.int64())
        lists = type(column).from_arrays(offsets, items, mask=column.is_null())
        return pc.binary_join_element_wise("[", pc.binary_join(lists, ","), "]", "")
    return _fallback(column)


def json_texts(column: pa.Array, field_type: str, timezone: str) -> pa.Array:
    """JSON text of each value of a field, as the JSON export writes it; "null" for null."""
    if field_type == "datetime":
        text = quoted(datetime_strings(column, timezone))
    elif field_type == "date":
        text = quoted(date_strings(column))
    elif field_type == "geo_shape":
        text = shape_geojson_strings(column)
    else:
        text = value_texts(column)
    return pc.fill_null(text, "null")


def object_texts(batch: pa.RecordBatch, fields: Sequence, names: Sequence[str], timezone: str) -> list[Any]:
    """The pieces of each record's JSON object, `{"name":value,…}`, for binary_join_element_wise."""
    parts: list[Any] = []
    for i, (field, name) in enumerate(zip(fields, names)):
        key = ("{" if i == 0 else ",") + orjson.dumps(name).decode() + ":"
        column = batch.column(i)
        if field.type == "text" and column.null_count == 0 and pa.types.is_string(column.type):
            parts += [key + '"', _escape(column), '"']  # no null: the quotes go into the literals
        else:
            parts += [key, json_texts(column, field.type, timezone)]
    parts.append("}" if parts else "{}")
    return parts


def joined(parts: list[Any], length: int) -> pa.Array:
    """binary_join_element_wise of `parts` (no separator), as an array even when every part is
    a literal."""
    if not any(isinstance(p, (pa.Array, pa.ChunkedArray)) for p in parts):
        parts = [pa.array([""] * length, pa.string()), *parts]
    return pc.binary_join_element_wise(*parts, "")


def buffer_of(text: pa.Array) -> memoryview:
    """The bytes of every value of a string array, back to back, without a copy."""
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    if len(text) == 0:
        return memoryview(b"")
    offsets = np.frombuffer(text.buffers()[1], np.int32 if pa.types.is_string(text.type) else np.int64)
    start, end = int(offsets[text.offset]), int(offsets[text.offset + len(text)])
    return memoryview(text.buffers()[2])[start:end]


POLARS_TYPES = frozenset({"text", "int", "double", "boolean", "date", "datetime", "geo_point_2d"})


def polars_ready(fields: Sequence, schema: pa.Schema) -> bool:
    """Whether polars' JSON writer can write these columns: the plain field types, no lists."""
    return all(field.type in POLARS_TYPES and not pa.types.is_list(column.type) for field, column in zip(fields, schema))


def polars_batch(batch: pa.RecordBatch, fields: Sequence, names: Sequence[str], timezone: str) -> pa.RecordBatch:
    """The columns polars' JSON writer writes as the JSON export does: datetimes and dates
    rendered first, as everywhere; polars escapes strings as orjson does, writes NaN and ±inf
    as null, whole doubles with a `.0`, and points as {"lon", "lat"}."""
    columns = []
    for field, column in zip(fields, batch.columns):
        if field.type == "datetime":
            column = datetime_strings(column, timezone)
        elif field.type == "date":
            column = date_strings(column)
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, names=list(names))


def polars_lines(batch: pa.RecordBatch, fields: Sequence, names: Sequence[str], timezone: str) -> bytes | None:
    """The batch as JSON Lines through polars' native writer, 2.5x the pyarrow.compute path
    (MEASUREMENTS.md; bench/), for batches of the plain field types; None for the others
    (geo_shape, lists), which the pyarrow.compute path writes."""
    if not polars_ready(fields, batch.schema):
        return None
    out = io.BytesIO()
    pl.from_arrow(polars_batch(batch, fields, names, timezone)).write_ndjson(out)
    return out.getvalue()


def lines_of(batch: pa.RecordBatch, fields: Sequence, names: Sequence[str], timezone: str) -> bytes | memoryview:
    """The batch as JSON Lines, through polars when its field types allow."""
    lines = polars_lines(batch, fields, names, timezone)
    if lines is None:
        return buffer_of(joined([*object_texts(batch, fields, names, timezone), "\n"], batch.num_rows))
    return lines


class JsonWriter(Writer):
    """`[` record `,` record … `]`: valid JSON however many batches come, including none.
    Batches are rendered on worker threads (formats.parallel), each as its records with `,\n`
    after each, written without its last `,\n`: the next batch's records come after a `,\n`,
    the closing `]` after a `\n`."""

    def __init__(self, out, schema, fields, options):
        super().__init__(out, schema, fields, options)
        self.names = self.column_names()
        self.first = True
        self.rendering = OrderedRendering(self.render, self.put)
        out.write(b"[")

    def render(self, batch: pa.RecordBatch) -> bytes:
        # a JSON string holds no raw line break: each one ends a record
        return bytes(lines_of(batch, self.fields, self.names, self.options["timezone"])).replace(b"\n", b",\n")

    def put(self, records: bytes) -> None:
        self.out.write(b"\n" if self.first else b",\n")
        self.out.write(memoryview(records)[:-2])
        self.first = False

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows:
            self.rendering.submit(batch)

    def close(self) -> None:
        self.rendering.finish()
        self.out.write(b"]\n" if self.first else b"\n]\n")

    def abort(self) -> None:
        self.rendering.abort()


class JsonLinesWriter(Writer):
    """One record a line. Plain field types go to polars' streaming sink_ndjson
    (formats.parallel.PolarsSink), which renders on its own threads; the others are rendered
    batch by batch on the rendering threads (formats.parallel.OrderedRendering)."""

    def __init__(self, out, schema, fields, options):
        super().__init__(out, schema, fields, options)
        self.names = self.column_names()
        self.rendering: OrderedRendering | PolarsSink
        if polars_ready(self.fields, schema):
            rendered = self.polars_batch(pa.RecordBatch.from_pylist([], schema)).schema
            self.rendering = PolarsSink(rendered, lambda frame: frame.sink_ndjson(out), self.polars_batch)
            self.put = self.rendering.put
        else:
            self.rendering = OrderedRendering(self.render, out.write)
            self.put = self.rendering.submit

    def polars_batch(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        return polars_batch(batch, self.fields, self.names, self.options["timezone"])

    def render(self, batch: pa.RecordBatch) -> bytes | memoryview:
        return lines_of(batch, self.fields, self.names, self.options["timezone"])

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows:
            self.put(batch)

    def close(self) -> None:
        self.rendering.finish()

    def abort(self) -> None:
        self.rendering.abort()


FORMAT = Format(
    name="json",
    extension="json",
    media_type="application/json",
    writer=JsonWriter,
    description="One JSON array of records.",
)

JSONL = Format(
    name="jsonl",
    extension="jsonl",
    media_type="application/jsonl",
    writer=JsonLinesWriter,
    aliases=("ndjson",),
    description="JSON Lines: one JSON record a line.",
)
