"""JSON (one array of records) and JSON Lines (one record a line), values as OpenDataSoft's
JSON export gives them: datetimes as ISO 8601 with offset, dates as YYYY-MM-DD,
geo_point_2d as {"lon", "lat"}, geo_shape as a GeoJSON geometry."""
from __future__ import annotations

from typing import Any, Iterator

import orjson
import pyarrow as pa

from formats.base import Format, Writer
from formats.values import date_strings, datetime_strings, shape_geojson_strings


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


class JsonWriter(Writer):
    """`[` record `,` record … `]`: valid JSON however many batches come, including none."""

    def __init__(self, out, schema, fields, options):
        super().__init__(out, schema, fields, options)
        self.names = self.column_names()
        self.first = True
        out.write(b"[")

    def write(self, batch: pa.RecordBatch) -> None:
        parts = []
        for record in records(batch, self.fields, self.names, self.options["timezone"]):
            parts.append(b"\n" if self.first else b",\n")
            parts.append(orjson.dumps(record))
            self.first = False
        self.out.write(b"".join(parts))

    def close(self) -> None:
        self.out.write(b"]\n" if self.first else b"\n]\n")


class JsonLinesWriter(Writer):
    def __init__(self, out, schema, fields, options):
        super().__init__(out, schema, fields, options)
        self.names = self.column_names()

    def write(self, batch: pa.RecordBatch) -> None:
        self.out.write(b"".join(orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE)
                                for r in records(batch, self.fields, self.names, self.options["timezone"])))

    def close(self) -> None:
        pass


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
