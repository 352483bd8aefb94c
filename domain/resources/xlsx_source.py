"""XLSX resources, read row by row with openpyxl's read-only mode (the sheet is streamed from
the zip, never loaded whole). Cells are handed on as text: numbers as written (an integral
number without its `.0`: Excel has no integers), booleans as true/false, dates in ISO 8601."""
from __future__ import annotations

import warnings
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Iterator

import openpyxl
import pyarrow as pa

from domain.errors import Invalid
from domain.resources.names import Namer
from domain.resources.spec import Column, RawChunk, Rejected, ResourceSpec


class XlsxSource:
    """A sheet's columns (from its header row) and its rows in chunks."""

    open_columns = False  # the columns are all known before the first row

    def __init__(self, path: Path, spec: ResourceSpec) -> None:
        self.path = path
        self.sheet: str | None = spec.param("sheet")
        self.header_row = int(spec.param("header_row", 1))
        if self.header_row < 0:
            raise Invalid("header_row must be 0 (no header) or a 1-based sheet row")
        self.columns: list[Column] = []

    def chunks(self, rows: int) -> Iterator[RawChunk]:
        """Rows in chunks of up to `rows`, empty rows skipped; `self.columns` is set before the
        first chunk."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # openpyxl warns about styles and extensions it drops
            try:
                book = openpyxl.load_workbook(self.path, read_only=True, data_only=True)
            except Exception as e:  # zipfile.BadZipFile, KeyError, InvalidFileException…
                raise Invalid(f"{self.path.name} is not a readable XLSX workbook: {e}") from None
        try:
            if self.sheet is None:
                sheet = book.worksheets[0]
            elif self.sheet in book.sheetnames:
                sheet = book[self.sheet]
            else:
                raise Invalid(f"{self.path.name} has no sheet {self.sheet!r}; its sheets: {', '.join(book.sheetnames)}")
            yield from self._rows(sheet, rows)
        finally:
            book.close()

    def _rows(self, sheet: Any, rows: int) -> Iterator[RawChunk]:
        cells = enumerate(sheet.iter_rows(values_only=True), 1)
        width = 0
        if self.header_row:
            header: tuple = ()
            for number, header in cells:
                if number == self.header_row:
                    break
            labels = [_text(v) or "" for v in header]
            while labels and not labels[-1]:
                labels.pop()
            self.columns = Namer().columns(labels)
            width = len(self.columns)
        numbers: list[int] = []
        values: list[list[str | None]] = []
        rejected: list[Rejected] = []
        for number, row in cells:
            texts = [_text(v) for v in row]
            if not any(texts):
                continue
            if not self.header_row and not self.columns:
                self.columns = Namer().columns([f"column_{i}" for i in range(1, len(texts) + 1)])
                width = len(self.columns)
            if any(texts[width:]):
                rejected.append(Rejected(number, f"values beyond the header's {width} columns"))
            else:
                numbers.append(number)
                values.append((texts + [None] * width)[:width])
            if len(numbers) >= rows:
                yield self._chunk(numbers, values, rejected)
                numbers, values, rejected = [], [], []
        if numbers or rejected:
            yield self._chunk(numbers, values, rejected)

    def _chunk(self, numbers: list[int], values: list[list[str | None]], rejected: list[Rejected]) -> RawChunk:
        transposed = list(zip(*values)) if values else [()] * len(self.columns)
        columns = {c.name: pa.array(col, pa.string()) for c, col in zip(self.columns, transposed)}
        return RawChunk(numbers, columns, rejected)


def _text(value: Any) -> str | None:
    """A cell's value as text, as a person reading the sheet would write it."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    if isinstance(value, datetime):
        if value.time() == time(0) and value.tzinfo is None:
            return value.date().isoformat()
        return value.isoformat()
    if isinstance(value, (date, time)):
        return value.isoformat()
    return str(value)
