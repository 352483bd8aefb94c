"""Datasets that make writers sweat, and a helper that runs a format's writer over one.

Every format test reads what the writer produced back with an independent reader and
compares it with these tables, record by record."""
from __future__ import annotations

import io
from datetime import date, datetime, timezone
from typing import Any

import pyarrow as pa
import shapely

from domain.fields import DATETIME, GEO_POINT, Field, fields_of, with_fields
from formats import REGISTRY

LONG_TEXT = "Ünïcødé ≠ ASCII; " * 40  # 680 characters, > 254 bytes


def awkward_table() -> pa.Table:
    """Six records covering every field type, null in every column, non-ASCII, quotes, commas,
    semicolons and newlines in text, very long text, two field names that share their first
    ten characters, and mixed geometry types in geo_shape."""
    shapes = [
        shapely.Point(2.3522, 48.8566),
        shapely.Polygon([(2.0, 48.0), (3.0, 48.0), (3.0, 49.0), (2.0, 48.0)]),
        shapely.LineString([(-1.5, 47.2), (-1.4, 47.3)]),
        None,
        shapely.MultiPolygon([shapely.Polygon([(0, 0), (1, 0), (1, 1), (0, 0)])]),
        shapely.Point(-73.9857, 40.7484),
    ]
    table = pa.table({
        "title": ["Fête de la musique", 'Say "hello", world; ok', "line one\nline two", None, LONG_TEXT, "東京 イベント"],
        "attendance": pa.array([1200, -5, 0, None, 2**40, 7], pa.int64()),
        "price": pa.array([12.5, 0.0, -3.25, None, 1e-7, 99999.99], pa.float64()),
        "free": pa.array([False, True, None, None, True, False], pa.bool_()),
        "day": pa.array([date(2024, 6, 21), date(1999, 12, 31), date(2024, 2, 29), None, date(2030, 1, 1), date(2024, 3, 31)], pa.date32()),
        "starts_at": pa.array([
            datetime(2024, 6, 21, 18, 30, tzinfo=timezone.utc),
            datetime(1999, 12, 31, 23, 59, 59, tzinfo=timezone.utc),
            datetime(2024, 2, 29, 0, 0, tzinfo=timezone.utc),
            None,
            datetime(2030, 1, 1, 12, 0, tzinfo=timezone.utc),
            datetime(2024, 3, 31, 1, 30, tzinfo=timezone.utc),
        ], DATETIME),
        "category": ["music", "talk", "music", None, "sport", "talk"],
        "geo_point_2d": pa.array([
            {"lon": 2.3522, "lat": 48.8566}, {"lon": 3.0, "lat": 48.5}, {"lon": -1.45, "lat": 47.25},
            None, {"lon": 0.5, "lat": 0.5}, {"lon": -73.9857, "lat": 40.7484},
        ], GEO_POINT),
        "geo_shape": pa.array([None if s is None else shapely.to_wkb(s) for s in shapes], pa.binary()),
        "organiser_name": ["Ville de Paris", "Ünïon", None, None, "x" * 10, "東京都"],
        "organiser_name_2": ["A", "B", None, None, "C", "D"],
    })
    fields = [Field(f.name, f.type, label=f.name.replace("_", " ").title()) for f in fields_of(table.schema)]
    return table.replace_schema_metadata(with_fields(table.schema, fields).metadata)


def empty_table() -> pa.Table:
    return awkward_table().slice(0, 0)


def null_table() -> pa.Table:
    """Two records, every value null."""
    table = awkward_table()
    return pa.table({c: pa.nulls(2, table.schema.field(c).type) for c in table.column_names},
                    schema=table.schema)


def open_writer(format_name: str, table: pa.Table, options: dict[str, Any] | None = None, out: Any = None):
    """The registry's writer for `format_name`, opened for `table`'s schema on `out` (a new
    BytesIO by default); returns (writer, out)."""
    fmt = REGISTRY.get(format_name)
    fields = fields_of(table.schema)
    out = io.BytesIO() if out is None else out
    return fmt.open(out, table.schema, fields, fmt.parse_options(options or {}, fields)), out


def write(format_name: str, table: pa.Table, options: dict[str, Any] | None = None, batch_size: int = 4):
    """Run the registry's writer for `format_name` over `table` in small batches; returns
    (bytes, open writer) so tests can read the file and the writer's skipped/warnings."""
    writer, out = open_writer(format_name, table, options)
    for batch in table.to_batches(max_chunksize=batch_size):
        writer.write(batch)
    writer.close()
    return out.getvalue(), writer
