"""What a resource is (its type and parameters) and what reading it yields.

A source (one module per file type) yields `RawChunk`s: the rows of the file as Arrow arrays
keyed by field name, before any field type is applied. The reader turns each into a
`ReadBatch`: the rows converted to their fields' Arrow types, and the rows that could not be.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

RESOURCE_TYPES = ("csv", "geojson", "parquet", "xlsx")


@dataclass(frozen=True)
class ResourceSpec:
    """A resource file's type and its parameters.

    `params` (all optional):
      - csv: `delimiter` (or `separator`; sniffed among `, ; tab |` when absent), `encoding`
        (sniffed: utf-8, utf-8-sig, else cp1252/latin-1), `header_row` (1-based record holding
        the column names, default 1; 0 means no header: columns are named column_1, column_2…);
      - xlsx: `sheet` (name; default the first sheet), `header_row` (1-based sheet row, default 1);
      - all: `fields` {"name or original column name": "field type"} overriding inferred types;
        `lat_field` and `lon_field` naming the two columns a geo_point_2d field is built from.
    """

    type: str
    params: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.type not in RESOURCE_TYPES:
            raise ValueError(f"unknown resource type {self.type!r}; expected one of {', '.join(RESOURCE_TYPES)}")

    def param(self, name: str, default: Any = None) -> Any:
        return self.params.get(name, default)


@dataclass(frozen=True)
class Rejected:
    """A row that could not be converted to its fields' types.

    `row_number` says where to find the row in the source, as a person would look for it:
    CSV: the line on which the record starts (the header is line 1, so the first data record
    is usually line 2); XLSX: the sheet row; GeoJSON: the feature's 1-based position in the
    collection; Parquet: the row's 1-based position in the file.
    """

    row_number: int
    reason: str


@dataclass(frozen=True)
class ReadBatch:
    """Rows read from a resource: `batch` holds the rows converted, in exactly the Arrow types
    of the fields (domain.fields.ARROW_TYPES); `rejected` the rows left out, and why."""

    batch: pa.RecordBatch
    rejected: list[Rejected]


@dataclass
class RawChunk:
    """Consecutive rows of a source before conversion.

    `columns` maps a field name to an array: text (pa.string) for CSV, XLSX and GeoJSON
    properties; the file's own types for Parquet; already converted geo_shape/geo_point_2d
    arrays for a GeoJSON geometry. A name absent from `columns` is null on every row (a GeoJSON
    property no feature of the chunk has). `row_numbers` gives each row's place in the source
    (see Rejected); `rejected` the rows the source itself could not read (a CSV record with the
    wrong number of values, a GeoJSON feature with an invalid geometry), already left out.
    """

    row_numbers: list[int]
    columns: dict[str, pa.Array]
    rejected: list[Rejected] = field(default_factory=list)

    @property
    def num_rows(self) -> int:
        return len(self.row_numbers)


@dataclass(frozen=True)
class Column:
    """A source column: its field name (normalised, unique) and its label (as in the file)."""

    name: str
    label: str
