"""Excel XLSX, written as SpreadsheetML directly: each batch's rows are built as XML with
pyarrow.compute (a column of values per field, laid out between the cells' markup by
formats/textrows.py) and deflated into the sheet's spool, a temporary file that becomes the
sheet's zip entry when the sheet ends (formats/ooxml.py, formats/zipstream.py). No Python runs
per record or cell; memory holds one batch's XML. xlsxwriter's constant_memory loop, which
this replaces, wrote ~4k rows/s.

- A header row in bold (names, or labels with `use_labels`), then one row per record; each
  column is as wide as its header or its values' usual width.
- Integers and floats as numbers, booleans as booleans, dates and datetimes as Excel serial
  numbers with a date format — datetimes in the `timezone` option's zone, since Excel has no
  time zones. Values before 1900, which Excel cannot show as dates, are ISO text.
  geo_point_2d is "lat, lon" text, geo_shape GeoJSON text. Nulls are empty cells.
- Text is always an inline string, so "=cmd()" and the like are text, never formulas;
  characters XML cannot hold are written as OOXML's _xHHHH_ escapes, as Excel does. Text
  over Excel's 32,767-character cell limit (UTF-16 units) is cut, counted in a warning per field.
- The sheet is named after the dataset (the `stem` Format.open passes, within Excel's rules:
  formats/names.py; Sheet1 without one). Past ROWS_PER_SHEET rows (header included: 1,048,575
  records) the records continue on a new sheet ("NAME (2)", …) with the header repeated, and a
  warning says so.
- NaN and ±inf are left blank (as JSON writes them null). Integers are written exactly;
  Excel reads numbers as doubles, so beyond 2**53 it keeps 15-17 digits."""
from __future__ import annotations

from collections import Counter
from typing import Any, BinaryIO, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from domain.fields import Field
from formats.base import Format, Writer
from formats.ooxml import STYLE_BOLD, STYLE_DATE, STYLE_DATETIME, WorkbookPackage, column_widths, ooxml_text
from formats.textrows import Slot, join_rows
from formats.values import as_text, date_strings, datetime_strings, string_bytes

ROWS_PER_SHEET = 1_048_576  # Excel's limit, header row included
CELL_TEXT_LIMIT = 32_767  # UTF-16 code units
US_PER_DAY = 86_400_000_000
UNIX_EPOCH_SERIAL = 25_569  # 1970-01-01 as an Excel serial (1900 date system)
FIRST_BUG_FREE_SERIAL = 61  # 1900-03-01: before it Excel counts its phantom 1900-02-29
DATE_FORMAT = "yyyy-mm-dd"
DATETIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
GEO_TYPES = frozenset({"geo_point_2d", "geo_shape"})
WIDTHS = {"date": 12, "datetime": 20, "geo_point_2d": 22, "geo_shape": 30}  # characters; others 10
DEFAULT_WIDTH, MAX_WIDTH = 10, 60
XML_SPACES = np.frombuffer(b" \t\n", np.uint8)

# The markup around each value (formats/textrows.py): (before, after) per variant, the last one
# for null values. Cells carry no reference: each follows the one before; rows are numbered.
EMPTY_CELL = ("<c/>", "")
ROW = (('<row r="', '">'),)


def text_variants(style: int = 0) -> tuple[tuple[str, str], ...]:
    """Inline-string cells: plain, with xml:space="preserve" (the value starts or ends with
    whitespace), empty."""
    attr = f' s="{style}"' if style else ""
    cells = tuple((f'<c t="inlineStr"{attr}><is><t{space}>', "</t></is></c>") for space in ("", ' xml:space="preserve"'))
    return (*cells, EMPTY_CELL)


TEXT, HEADER = text_variants(), text_variants(STYLE_BOLD)
NUMBER = (("<c><v>", "</v></c>"), EMPTY_CELL)
BOOLEAN = (('<c t="b"><v>', "</v></c>"), EMPTY_CELL)
DATES = {kind: ((f'<c s="{style}"><v>', "</v></c>"), TEXT[0], EMPTY_CELL)
         for kind, style in (("date", STYLE_DATE), ("datetime", STYLE_DATETIME))}


def excel_serials(column: pa.Array, field_type: str, timezone: str) -> tuple[pa.Array, pa.Array]:
    """Excel serial numbers of a date or datetime column, local time of `timezone` for
    datetimes (int32 days for dates, float64 for datetimes), and where they fall before 1900
    (no serial for Excel); null for nulls."""
    if field_type == "date":
        days: pa.Array = pc.add(column.cast(pa.date32()).cast(pa.int32()), UNIX_EPOCH_SERIAL)
        serial = pc.if_else(pc.less(days, FIRST_BUG_FREE_SERIAL), pc.subtract(days, 1), days)
    else:
        if column.type.tz is None:  # naive timestamps are UTC
            column = column.cast(pa.timestamp("us")).cast(pa.int64()).cast(pa.timestamp("us", tz="UTC"))
        if timezone != "UTC":
            column = pc.local_timestamp(column.cast(pa.timestamp("us", tz=timezone)))
        # unsafe: microseconds beyond 2**53 (before 1685, after 2255) round to a double, as Excel keeps them anyway
        days = pc.divide(column.cast(pa.int64()).cast(pa.float64(), safe=False), float(US_PER_DAY))
        serial = pc.add(days, float(UNIX_EPOCH_SERIAL))
        serial = pc.if_else(pc.less(serial, FIRST_BUG_FREE_SERIAL), pc.subtract(serial, 1.0), serial)
    return serial, pc.less(serial, 1)


def utf16_cut(text: str, limit: int) -> str:
    """`text` cut to `limit` UTF-16 code units, never between the halves of a surrogate pair."""
    units = text.encode("utf-16-le")[:2 * limit]
    if 0xD8 <= units[-1] <= 0xDB:  # a high surrogate whose low half was cut off
        units = units[:-2]
    return units.decode("utf-16-le")


def cut_to_cell_limit(text: pa.Array) -> tuple[pa.Array, int]:
    """Text cut to Excel's cell limit, and how many values were cut. Only values of more
    bytes than the limit can be over it (a UTF-16 unit is at least one UTF-8 byte)."""
    long = pc.fill_null(pc.greater(pc.binary_length(text), CELL_TEXT_LIMIT), False)
    if not pc.any(long).as_py():
        return text, 0
    values = text.filter(long).to_pylist()
    cut = [utf16_cut(value, CELL_TEXT_LIMIT) for value in values]
    return pc.replace_with_mask(text, long, pa.array(cut, pa.string())), sum(a != b for a, b in zip(values, cut))


def text_slot(text: pa.Array, variants: tuple[tuple[str, str], ...] = TEXT) -> Slot:
    """Inline-string cells of a string column (already cut to the cell limit), with the
    variants of `text_variants`."""
    text = ooxml_text(text)
    data, offsets = string_bytes(text)
    starts, ends = offsets[:-1], offsets[1:]
    filled = np.flatnonzero(ends > starts)
    padded = np.isin(data[starts[filled]], XML_SPACES) | np.isin(data[ends[filled] - 1], XML_SPACES)
    if not padded.any():
        return Slot(text, variants)
    choice = np.zeros(len(text), np.int8)
    choice[filled[padded]] = 1
    return Slot(text, variants, choice)


class WorkbookWriter(Writer):
    def __init__(self, out: BinaryIO, schema: pa.Schema, fields: Sequence[Field], options: Mapping[str, Any]):
        super().__init__(out, schema, fields, options)
        names = self.column_names()
        widths = [min(max(len(name) + 2, WIDTHS.get(f.type, DEFAULT_WIDTH)), MAX_WIDTH)
                  for name, f in zip(names, self.fields)]
        header = [text_slot(pa.array([name], pa.string()), HEADER) for name in names]
        self.header = join_rows([Slot(pa.array(["1"]), ROW), *header], "</row>").tobytes()
        self.truncated: Counter[str] = Counter()
        self.package = WorkbookPackage(out, len(self.fields), column_widths(widths), DATE_FORMAT, DATETIME_FORMAT,
                                       options.get("stem"))
        self._new_sheet()

    def _new_sheet(self) -> None:
        if self.package.sheets:
            self.package.end_sheet()
        self.package.begin_sheet()
        self.package.write(self.header, 1)
        self.row = 1  # rows written to the current sheet, header included

    def _slot(self, column: pa.Array, field: Field) -> Slot:
        """The column's cells: values and the markup around them."""
        kind = field.type
        if kind == "int":
            return Slot(column.cast(pa.string()), NUMBER)
        if kind == "double":
            return Slot(pc.if_else(pc.is_finite(column), column, None).cast(pa.string()), NUMBER)
        if kind == "boolean":
            return Slot(pc.if_else(column, "1", "0"), BOOLEAN)
        if kind in DATES:
            serial, too_early = excel_serials(column, kind, self.options["timezone"])
            if not pc.any(too_early).as_py():
                return Slot(serial.cast(pa.string()), DATES[kind])
            iso = date_strings(column) if kind == "date" else datetime_strings(column, self.options["timezone"])
            values = pc.if_else(too_early, ooxml_text(iso), serial.cast(pa.string()))
            return Slot(values, DATES[kind], pc.fill_null(too_early, False).to_numpy(zero_copy_only=False))
        text, cut = cut_to_cell_limit(as_text(column, kind))
        if cut:
            self.truncated[field.name] += cut
        return text_slot(text)

    def _rows(self, batch: pa.RecordBatch) -> np.ndarray:
        """The XML of a batch's rows, numbered from the current row on."""
        numbers = pa.array(np.arange(self.row + 1, self.row + batch.num_rows + 1)).cast(pa.string())
        slots = [self._slot(batch.column(i), f) for i, f in enumerate(self.fields)]
        return join_rows([Slot(numbers, ROW), *slots], "</row>")

    def write(self, batch: pa.RecordBatch) -> None:
        done = 0
        while done < batch.num_rows:
            if self.row == ROWS_PER_SHEET:
                self._new_sheet()
            count = min(batch.num_rows - done, ROWS_PER_SHEET - self.row)
            self.package.write(self._rows(batch.slice(done, count)), count)
            self.row += count
            done += count

    def close(self) -> None:
        for name, count in self.truncated.items():
            self.warnings.append(
                f"{count} value(s) of field {name!r} cut to Excel's {CELL_TEXT_LIMIT:,}-character cell limit")
        if self.package.sheets > 1:
            self.warnings.append(
                f"more than {ROWS_PER_SHEET - 1:,} records: continued over {self.package.sheets} sheets")
        self.package.close()

    def abort(self) -> None:
        self.package.abort()


FORMAT = Format(
    name="xlsx",
    extension="xlsx",
    media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    writer=WorkbookWriter,
    aliases=("xls",),
    binary=True,
    description="Excel workbook (XLSX); over 1,048,575 records continue on further sheets.",
)
