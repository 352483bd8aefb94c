"""A dataset's fields: name, label and OpenDataSoft type, and how each type is held in Arrow.

| type         | Arrow                                   |
| ------------ | --------------------------------------- |
| text         | string                                  |
| int          | int64                                   |
| double       | float64                                 |
| boolean      | bool                                    |
| date         | date32                                  |
| datetime     | timestamp[us, tz=UTC]                   |
| geo_point_2d | struct<lon: double, lat: double>        |
| geo_shape    | binary (WKB), GeoParquet metadata       |

The fields (with their labels) travel in the Parquet schema metadata under `exportd`, so a
dataset version is self-describing.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import orjson
import pyarrow as pa

TYPES = ("text", "int", "double", "boolean", "date", "datetime", "geo_point_2d", "geo_shape")
GEOMETRY_TYPES = frozenset({"geo_point_2d", "geo_shape"})
DATE_TYPES = frozenset({"date", "datetime"})
METADATA_KEY = b"exportd"

GEO_POINT = pa.struct([("lon", pa.float64()), ("lat", pa.float64())])
DATETIME = pa.timestamp("us", tz="UTC")

ARROW_TYPES: dict[str, pa.DataType] = {
    "text": pa.string(),
    "int": pa.int64(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
    "datetime": DATETIME,
    "geo_point_2d": GEO_POINT,
    "geo_shape": pa.binary(),
}


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    label: str = ""

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"unknown field type {self.type!r} for {self.name!r}")
        if not self.label:
            object.__setattr__(self, "label", self.name)

    def as_dict(self) -> dict[str, str]:
        # not dataclasses.asdict, which deep-copies every value: a millisecond of a small export
        return {"name": self.name, "type": self.type, "label": self.label}


def type_of(arrow_type: pa.DataType) -> str:
    """The field type an Arrow column is read as, when the file does not say."""
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "text"
    if pa.types.is_integer(arrow_type):
        return "int"
    if pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
        return "double"
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_date(arrow_type):
        return "date"
    if pa.types.is_timestamp(arrow_type):
        return "datetime"
    if pa.types.is_struct(arrow_type) and {f.name for f in arrow_type} >= {"lon", "lat"}:
        return "geo_point_2d"
    if pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type):
        return "geo_shape"
    raise ValueError(f"no field type for Arrow type {arrow_type}")


def fields_of(schema: pa.Schema) -> list[Field]:
    """The fields of a schema: from its exportd metadata where present, else from its types."""
    meta = (schema.metadata or {}).get(METADATA_KEY)
    if meta:
        described = {f["name"]: Field(**f) for f in orjson.loads(meta)["fields"]}
        return [described.get(col.name) or Field(col.name, type_of(col.type)) for col in schema]
    return [Field(col.name, type_of(col.type)) for col in schema]


def with_fields(schema: pa.Schema, fields: Iterable[Field]) -> pa.Schema:
    """The schema with the fields written into its metadata."""
    meta = dict(schema.metadata or {})
    meta[METADATA_KEY] = orjson.dumps({"fields": [f.as_dict() for f in fields]})
    return schema.with_metadata(meta)


def fields_for(schema: pa.Schema, known: Iterable[Field]) -> list[Field]:
    """Fields describing a query result's columns: the dataset's field where a column keeps
    its name and type (with its label), else the type the column holds."""
    by_name = {f.name: f for f in known}
    out = []
    for column in schema:
        field = by_name.get(column.name)
        out.append(field if field is not None and field.type == type_of(column.type) else Field(column.name, type_of(column.type)))
    return out
