"""What every resource source offers, and the source for a resource spec."""
from __future__ import annotations

from pathlib import Path
from typing import Generator, Protocol

from domain.resources.csv_source import CsvSource
from domain.resources.geojson_source import GeoJsonSource
from domain.resources.parquet_source import ParquetSource
from domain.resources.spec import Column, RawChunk, ResourceSpec
from domain.resources.xlsx_source import XlsxSource


class Source(Protocol):
    """A resource file read as chunks of raw rows.

    `columns` is complete once the first chunk is out (or the chunks are exhausted), except
    where `open_columns` is set (GeoJSON), where it grows as new properties are met."""

    open_columns: bool

    @property
    def columns(self) -> list[Column]: ...

    def chunks(self, rows: int) -> Generator[RawChunk, None, None]: ...


SOURCES: dict[str, type] = {
    "csv": CsvSource,
    "geojson": GeoJsonSource,
    "parquet": ParquetSource,
    "xlsx": XlsxSource,
}


def open_source(path: Path, spec: ResourceSpec) -> Source:
    return SOURCES[spec.type](path, spec)
