"""CSV resources, streamed record by record with Python's csv module (quoted values may hold
delimiters and newlines), decoded in the resource's encoding, handed on as text columns."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterator

import pyarrow as pa

from domain.errors import Invalid
from domain.resources.names import Namer
from domain.resources.sniff import sniff_delimiter, sniff_encoding
from domain.resources.spec import Column, RawChunk, Rejected, ResourceSpec

# A WKT or GeoJSON value easily passes csv's default limit of 128 KiB per value.
csv.field_size_limit(max(csv.field_size_limit(), 1 << 28))


class CsvSource:
    """A CSV file's columns (from its header row) and its records in chunks."""

    open_columns = False  # the columns are all known before the first row

    def __init__(self, path: Path, spec: ResourceSpec) -> None:
        self.path = path
        self.encoding: str = spec.param("encoding") or sniff_encoding(path)
        self.delimiter: str = spec.param("delimiter") or spec.param("separator") or sniff_delimiter(path, self.encoding)
        if len(self.delimiter) != 1:
            raise Invalid(f"the CSV delimiter must be one character, not {self.delimiter!r}")
        self.header_row = int(spec.param("header_row", 1))
        if self.header_row < 0:
            raise Invalid("header_row must be 0 (no header) or a 1-based record number")
        self.columns: list[Column] = []

    def chunks(self, rows: int) -> Iterator[RawChunk]:
        """Records in chunks of up to `rows`; `self.columns` is set before the first chunk."""
        with open(self.path, encoding=self.encoding, newline="") as f:
            reader = csv.reader(f, delimiter=self.delimiter)
            records = self._records(reader)
            first = None
            if self.header_row:
                header = next((r for i, (_, r) in enumerate(records, 1) if i == self.header_row), None)
                if header is None:
                    raise Invalid(f"{self.path.name} has no record {self.header_row} to take column names from")
                if header and header[0].startswith("\ufeff"):
                    header[0] = header[0][1:]
                labels = header
            else:
                first = next(records, None)
                labels = [f"column_{i}" for i in range(1, len(first[1]) + 1)] if first else []
            self.columns = Namer().columns(labels)
            width = len(self.columns)
            numbers: list[int] = []
            values: list[list[str]] = []
            rejected: list[Rejected] = []
            if first:
                numbers.append(first[0])
                values.append(first[1])
                if rows == 1:
                    yield self._chunk(numbers, values, rejected)
                    numbers, values = [], []
            line = reader.line_num
            try:
                for record in reader:  # the hot loop: no generator in between
                    start, line = line + 1, reader.line_num
                    if len(record) != width:
                        if not record:
                            continue  # a blank line
                        rejected.append(Rejected(start, f"{len(record)} values where the header has {width}"))
                        continue
                    numbers.append(start)
                    values.append(record)
                    if len(numbers) >= rows:
                        yield self._chunk(numbers, values, rejected)
                        numbers, values, rejected = [], [], []
            except (csv.Error, UnicodeDecodeError) as e:
                raise self._unreadable(e, reader.line_num) from None
            if numbers or rejected:
                yield self._chunk(numbers, values, rejected)

    def _records(self, reader: "csv._reader") -> Iterator[tuple[int, list[str]]]:
        """(line the record starts on, its values) for the records before the data, blank
        lines skipped."""
        line = 0
        while True:
            try:
                record = next(reader)
            except StopIteration:
                return
            except (csv.Error, UnicodeDecodeError) as e:
                raise self._unreadable(e, reader.line_num) from None
            start, line = line + 1, reader.line_num
            if record:
                yield start, record

    def _unreadable(self, error: Exception, line: int) -> Invalid:
        """A record csv cannot read, or a byte the encoding cannot decode, stops the read."""
        if isinstance(error, UnicodeDecodeError):
            return Invalid(f"{self.path.name} is not {self.encoding} near line {line + 1}: {error.reason}")
        return Invalid(f"{self.path.name}: unreadable CSV near line {line}: {error}")

    def _chunk(self, numbers: list[int], values: list[list[str]], rejected: list[Rejected]) -> RawChunk:
        transposed = list(zip(*values)) if values else [()] * len(self.columns)
        columns = {c.name: pa.array(col, pa.string()) for c, col in zip(self.columns, transposed)}
        return RawChunk(numbers, columns, rejected)

