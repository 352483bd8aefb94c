"""Excel XLSX through xlsxwriter in constant_memory mode (each row is flushed to a temporary
sheet file as soon as the next one starts, so memory stays flat).

- A header row (names, or labels with `use_labels`), then one row per record.
- Numbers as numbers, booleans as booleans, dates and datetimes as Excel serial numbers with
  a date format — datetimes in the `timezone` option's zone, since Excel has no time zones.
  Serials are computed vectorised; values before 1900, which Excel cannot show as dates, are
  written as ISO text. geo_point_2d is "lat, lon" text, geo_shape GeoJSON text.
- Text always goes through write_string, so "=cmd()" and the like are text, never formulas.
  Text over Excel's 32,767-character cell limit is cut by xlsxwriter (return code -2) and
  counted in a warning per field.
- Past ROWS_PER_SHEET rows (header included: 1,048,575 records) the records continue on a new
  sheet (Sheet2, …) with the header repeated. Any other -1 from xlsxwriter (out of bounds)
  is a bug here and raises rather than silently dropping cells.
- xlsxwriter zips the workbook on close and seeks back in its output while doing so, which a
  gzip stream cannot do; it writes to a temporary file that is copied into `out` on close.
  That file and xlsxwriter's per-sheet temporary files live in one temporary directory of
  the writer's, removed on close (or, after a failure, when the writer is collected).
- NaN and ±inf are left blank (as JSON writes them null). Integers beyond 2**53 lose
  precision: Excel numbers are doubles."""
from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from typing import Any, BinaryIO, Callable, Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import xlsxwriter

from domain.fields import Field
from formats.base import Format, Writer, require_wgs84
from formats.values import date_strings, datetime_strings, point_lat_lon_strings, shape_geojson_strings

ROWS_PER_SHEET = 1_048_576  # Excel's limit, header row included
CELL_TEXT_LIMIT = 32_767
US_PER_DAY = 86_400_000_000
UNIX_EPOCH_SERIAL = 25_569  # 1970-01-01 as an Excel serial (1900 date system)
FIRST_BUG_FREE_SERIAL = 61  # 1900-03-01: before it Excel counts its phantom 1900-02-29
DATE_FORMAT = "yyyy-mm-dd"
DATETIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
GEO_TYPES = frozenset({"geo_point_2d", "geo_shape"})
KIND = {"int": "number", "double": "number", "boolean": "boolean", "date": "date", "datetime": "date"}


def excel_serials(column: pa.Array, field_type: str, timezone: str) -> list[Any]:
    """Excel serial numbers (floats) of a date or datetime column, local time of `timezone`
    for datetimes; ISO text for values before 1900, None for nulls."""
    if field_type == "date":
        days = column.cast(pa.date32()).cast(pa.int32()).cast(pa.float64())
    else:
        if column.type.tz is None:  # naive timestamps are UTC
            column = column.cast(pa.timestamp("us")).cast(pa.int64()).cast(pa.timestamp("us", tz="UTC"))
        local = pc.local_timestamp(column.cast(pa.timestamp("us", tz=timezone)))
        # unsafe: microseconds beyond 2**53 (before 1685, after 2255) round to a double, as Excel keeps them anyway
        days = pc.divide(local.cast(pa.int64()).cast(pa.float64(), safe=False), float(US_PER_DAY))
    serial = pc.add(days, float(UNIX_EPOCH_SERIAL))
    serial = pc.if_else(pc.less(serial, FIRST_BUG_FREE_SERIAL), pc.subtract(serial, 1.0), serial)
    too_early = pc.less(serial, 1.0)
    if not pc.any(too_early).as_py():
        return serial.to_pylist()
    text = date_strings(column) if field_type == "date" else datetime_strings(column, timezone)
    return [t if early else s for s, t, early in zip(serial.to_pylist(), text.to_pylist(), too_early.to_pylist())]


class WorkbookWriter(Writer):
    def __init__(self, out: BinaryIO, schema: pa.Schema, fields: Sequence[Field], options: Mapping[str, Any]):
        super().__init__(out, schema, fields, options)
        if any(f.type in GEO_TYPES for f in self.fields):
            require_wgs84(options, "xlsx")
        self.tmpdir = tempfile.TemporaryDirectory(prefix="exportd-xlsx-")
        self.tmp = tempfile.TemporaryFile(dir=self.tmpdir.name)
        self.book = xlsxwriter.Workbook(self.tmp, {
            "constant_memory": True,
            "tmpdir": self.tmpdir.name,
            "strings_to_numbers": False,
            "strings_to_formulas": False,
            "strings_to_urls": False,
        })
        self.bold = self.book.add_format({"bold": True})
        date_format = self.book.add_format({"num_format": DATE_FORMAT})
        datetime_format = self.book.add_format({"num_format": DATETIME_FORMAT})
        self.kinds = [KIND.get(f.type, "string") for f in self.fields]
        self.formats = [{"date": date_format, "datetime": datetime_format}.get(f.type) for f in self.fields]
        self.truncated: Counter[str] = Counter()
        self.sheets = 0
        self._new_sheet()

    def _new_sheet(self) -> None:
        self.sheet = self.book.add_worksheet()
        self.sheets += 1
        for col, name in enumerate(self.column_names()):
            self.sheet.write_string(0, col, name, self.bold)
        methods = {"number": self.sheet.write_number, "boolean": self.sheet.write_boolean,
                   "string": self.sheet.write_string, "date": self._write_date}
        self.cell_writers: list[Callable[..., int]] = [methods[kind] for kind in self.kinds]
        self.row = 1

    def _write_date(self, row: int, col: int, value: float | str, cell_format: Any) -> int:
        if value.__class__ is str:
            return self.sheet.write_string(row, col, value)
        return self.sheet.write_number(row, col, value, cell_format)

    def _values(self, column: pa.Array, field: Field) -> list[Any]:
        if field.type in ("date", "datetime"):
            return excel_serials(column, field.type, self.options["timezone"])
        if field.type == "geo_point_2d":
            return point_lat_lon_strings(column).to_pylist()
        if field.type == "geo_shape":
            return shape_geojson_strings(column).to_pylist()
        if field.type == "text":
            return column.cast(pa.string()).to_pylist()
        if field.type == "double":
            return pc.if_else(pc.is_finite(column), column, None).to_pylist()
        return column.to_pylist()

    def write(self, batch: pa.RecordBatch) -> None:
        columns = [self._values(batch.column(i), f) for i, f in enumerate(self.fields)]
        formats = self.formats
        for values in zip(*columns):
            if self.row == ROWS_PER_SHEET:
                self._new_sheet()
            row, writers = self.row, self.cell_writers
            for col, value in enumerate(values):
                if value is not None and (code := writers[col](row, col, value, formats[col])):
                    self._trouble(code, row, col)
            self.row += 1

    def _trouble(self, code: int, row: int, col: int) -> None:
        if code == -2:
            self.truncated[self.fields[col].name] += 1
            return
        raise RuntimeError(f"xlsxwriter refused cell ({row}, {col}) of sheet {self.sheets} with code {code}")

    def close(self) -> None:
        for name, count in self.truncated.items():
            self.warnings.append(
                f"{count} value(s) of field {name!r} cut to Excel's {CELL_TEXT_LIMIT:,}-character cell limit")
        if self.sheets > 1:
            self.warnings.append(f"more than {ROWS_PER_SHEET - 1:,} records: continued over {self.sheets} sheets")
        self.book.close()
        self.tmp.seek(0)
        shutil.copyfileobj(self.tmp, self.out, 1 << 20)
        self.abort()

    def abort(self) -> None:
        for sheet in self.book.worksheets():  # constant_memory keeps a row file open per sheet
            handle = getattr(sheet, "row_data_fh", None)
            if handle is not None and not handle.closed:
                handle.close()
        self.tmp.close()
        self.tmpdir.cleanup()


FORMAT = Format(
    name="xlsx",
    extension="xlsx",
    media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    writer=WorkbookWriter,
    aliases=("xls",),
    binary=True,
    description="Excel workbook (XLSX); over 1,048,575 records continue on further sheets.",
)
