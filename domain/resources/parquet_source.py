"""Parquet resources, streamed row group by row group in record batches, keeping the file's
own column types (a typed column needs no inference); the types exportd wrote in the file's
metadata are taken as given."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from domain.errors import Invalid
from domain.fields import METADATA_KEY, Field, fields_of
from domain.resources.names import Namer
from domain.resources.spec import Column, RawChunk, ResourceSpec


class ParquetSource:
    """A Parquet file's columns and its rows in chunks."""

    open_columns = False  # the columns are all known before the first row

    def __init__(self, path: Path, spec: ResourceSpec) -> None:
        self.path = path
        try:
            schema = pq.read_schema(path)  # the footer only
        except (pa.ArrowInvalid, OSError) as e:
            raise Invalid(f"{path.name} is not a readable Parquet file: {e}") from None
        self.columns: list[Column] = Namer().columns(schema.names)
        self.arrow_types: dict[str, pa.DataType] = {c.name: f.type for c, f in zip(self.columns, schema)}
        self.described: dict[str, Field] = {}
        if METADATA_KEY in (schema.metadata or {}):
            try:
                described = fields_of(schema)
            except ValueError:
                described = []
            self.described = {c.name: f for c, f in zip(self.columns, described)}

    def chunks(self, rows: int) -> Iterator[RawChunk]:
        """Rows in chunks of up to `rows` (Arrow's batches, never the whole file)."""
        first = 1
        with pq.ParquetFile(self.path) as file:
            for batch in file.iter_batches(batch_size=rows):
                numbers = list(range(first, first + batch.num_rows))
                first += batch.num_rows
                yield RawChunk(numbers, {c.name: col for c, col in zip(self.columns, batch.columns)})
