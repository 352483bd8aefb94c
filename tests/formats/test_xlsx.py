"""XLSX writer: read back with openpyxl, compared with the samples."""
from __future__ import annotations

import gzip
import io
import re
import zipfile
import zlib
from datetime import date, datetime, timezone
from xml.etree import ElementTree
from zoneinfo import ZoneInfo

import numpy as np
import openpyxl
import pyarrow as pa
import pytest
import shapely

from domain.fields import DATETIME, Field, fields_of, with_fields
from formats import REGISTRY, OptionError
from formats import xlsx, zipstream
from formats.textrows import Slot, join_rows
from tests.formats.samples import awkward_table, empty_table, null_table, open_writer, write

PARIS = ZoneInfo("Europe/Paris")


def sheets(data: bytes) -> dict[str, list[list]]:
    book = openpyxl.load_workbook(io.BytesIO(data))
    return {ws.title: [list(row) for row in ws.iter_rows()] for ws in book.worksheets}


def cells(data: bytes) -> list[list[openpyxl.cell.Cell]]:
    return [list(row) for row in openpyxl.load_workbook(io.BytesIO(data)).worksheets[0].iter_rows()]


def described(table: pa.Table) -> pa.Table:
    return table.replace_schema_metadata(with_fields(table.schema, fields_of(table.schema)).metadata)


def test_awkward_table_round_trips_every_record_and_field() -> None:
    table = awkward_table()
    data, writer = write("xlsx", table, {"timezone": "Europe/Paris"})
    assert writer.warnings == [] and writer.skipped == 0
    book = sheets(data)
    assert list(book) == ["Sheet1"]
    header, *rows = [[c.value for c in row] for row in book["Sheet1"]]
    assert header == table.column_names and len(rows) == table.num_rows
    for row, record in zip(rows, table.to_pylist()):
        got = dict(zip(header, row))
        for name in ("title", "attendance", "free", "category", "organiser_name", "organiser_name_2"):
            assert got[name] == record[name] and type(got[name]) is type(record[name])
        assert got["price"] == record["price"]  # Excel keeps no int/float distinction: 0.0 reads as 0
        assert got["day"] == (None if record["day"] is None else datetime.combine(record["day"], datetime.min.time()))
        if record["starts_at"] is None:
            assert got["starts_at"] is None
        else:
            assert got["starts_at"] == record["starts_at"].astimezone(PARIS).replace(tzinfo=None)
        point = record["geo_point_2d"]
        if point is None:
            assert got["geo_point_2d"] is None
        else:
            lat, lon = map(float, got["geo_point_2d"].split(", "))
            assert lat == pytest.approx(point["lat"], abs=1e-5) and lon == pytest.approx(point["lon"], abs=1e-5)
        if record["geo_shape"] is None:
            assert got["geo_shape"] is None
        else:
            shape = shapely.from_geojson(got["geo_shape"])
            assert shapely.equals_exact(shape, shapely.from_wkb(record["geo_shape"]), tolerance=1e-5)


def test_cell_types_and_date_formats() -> None:
    header, first, *_ = cells(write("xlsx", awkward_table())[0])
    by_name = dict(zip([c.value for c in header], first))
    assert by_name["attendance"].data_type == "n" and by_name["free"].data_type == "b"
    assert by_name["day"].is_date and by_name["day"].number_format == xlsx.DATE_FORMAT
    assert by_name["starts_at"].is_date and by_name["starts_at"].number_format == xlsx.DATETIME_FORMAT
    assert by_name["starts_at"].value == datetime(2024, 6, 21, 18, 30)  # default timezone: UTC
    assert header[0].font.b


def test_text_that_looks_like_a_formula_stays_text() -> None:
    risky = ["=1+1", "+SUM(A1:A2)", "-2+3", "@cmd", "=HYPERLINK(\"http://x\")", "http://example.com"]
    table = described(pa.table({"title": risky}))
    rows = cells(write("xlsx", table)[0])[1:]
    assert [r[0].value for r in rows] == risky
    assert {r[0].data_type for r in rows} == {"s"}


def test_long_text_is_cut_with_a_warning() -> None:
    table = described(pa.table({"title": ["y" * 40_000, "short", "z" * 33_000]}))
    data, writer = write("xlsx", table)
    rows = cells(data)[1:]
    assert len(rows[0][0].value) == xlsx.CELL_TEXT_LIMIT and rows[1][0].value == "short"
    assert writer.warnings == ["2 value(s) of field 'title' cut to Excel's 32,767-character cell limit"]


def test_rows_continue_on_new_sheets_with_the_header(monkeypatch: pytest.MonkeyPatch) -> None:
    assert xlsx.ROWS_PER_SHEET == 1_048_576
    monkeypatch.setattr(xlsx, "ROWS_PER_SHEET", 3)
    table = awkward_table()
    data, writer = write("xlsx", table, batch_size=5)
    book = openpyxl.load_workbook(io.BytesIO(data))
    assert book.sheetnames == ["Sheet1", "Sheet2", "Sheet3"]
    titles = []
    for sheet in book.worksheets:
        assert [c.value for c in next(sheet.iter_rows())] == table.column_names and sheet.max_row <= 3
        titles += [sheet.cell(row, 1).value for row in (2, 3)]  # record 3, all null, is an empty row
    assert titles == table.column("title").to_pylist()
    assert writer.warnings == ["more than 2 records: continued over 3 sheets"]


def test_use_labels_names_the_header() -> None:
    header = cells(write("xlsx", awkward_table(), {"use_labels": True})[0])[0]
    assert [c.value for c in header] == [f.label for f in fields_of(awkward_table().schema)]


def test_dates_before_1900_are_iso_text() -> None:
    table = described(pa.table({
        "day": pa.array([date(1850, 5, 1), date(1900, 1, 1), date(1900, 3, 1)], pa.date32()),
        "at": pa.array([datetime(1899, 12, 31, 22, 0, tzinfo=timezone.utc)] * 3, DATETIME),
    }))
    rows = cells(write("xlsx", table)[0])[1:]
    assert [r[0].value for r in rows] == ["1850-05-01", datetime(1900, 1, 1), datetime(1900, 3, 1)]
    assert rows[0][1].value == "1899-12-31T22:00:00+00:00"


def test_nan_and_infinity_are_left_blank() -> None:
    table = described(pa.table({"price": pa.array([float("nan"), float("-inf"), 1.5])}))
    sheet = openpyxl.load_workbook(io.BytesIO(write("xlsx", table)[0])).active
    assert [sheet.cell(row, 1).value for row in (2, 3, 4)] == [None, None, 1.5]


def test_empty_table_has_only_the_header() -> None:
    assert [[c.value for c in row] for row in sheets(write("xlsx", empty_table())[0])["Sheet1"]] == [
        awkward_table().column_names]


def test_null_table_rows_are_empty() -> None:
    rows = sheets(write("xlsx", null_table())[0])["Sheet1"]
    assert all(c.value is None for row in rows[1:] for c in row)


def test_compressed_is_gzip_of_a_workbook() -> None:
    data, _ = write("xlsx", awkward_table(), {"compressed": True})
    assert sheets(gzip.decompress(data))["Sheet1"][1][0].value == "Fête de la musique"


def test_bad_and_unknown_options() -> None:
    with pytest.raises(OptionError, match="unknown option"):
        write("xlsx", awkward_table(), {"sheet_name": "x"})
    with pytest.raises(OptionError, match="use_labels"):
        write("xlsx", awkward_table(), {"use_labels": "maybe"})
    with pytest.raises(OptionError, match="epsg"):
        write("xlsx", awkward_table(), {"epsg": 2154})


def test_xls_alias_and_no_geometry_needed() -> None:
    fmt = REGISTRY.get("xls")
    assert fmt is REGISTRY.get("xlsx") and fmt.binary
    fmt.check([Field("title", "text")])


def test_real_row_limit() -> None:
    """Sheet1 full but for one row: the next record is its row 1,048,576, the ones after go
    to Sheet2 under a repeated header."""
    table = awkward_table()
    writer, out = open_writer("xlsx", table)
    writer.writer.row = xlsx.ROWS_PER_SHEET - 1
    writer.write(table.to_batches()[0])
    writer.close()
    with zipfile.ZipFile(io.BytesIO(out.getvalue())) as package:
        sheet1 = package.read("xl/worksheets/sheet1.xml").decode()
    assert f'<row r="{xlsx.ROWS_PER_SHEET}">' in sheet1 and f'<row r="{xlsx.ROWS_PER_SHEET + 1}">' not in sheet1
    book = openpyxl.load_workbook(io.BytesIO(out.getvalue()), read_only=True)
    assert book.sheetnames == ["Sheet1", "Sheet2"]
    sheet2 = [[c for c in row] for row in book["Sheet2"].iter_rows(values_only=True)]
    assert [row[0] for row in sheet2] == ["title", *table.column("title").to_pylist()[1:]]
    book.close()
    assert writer.warnings == [f"more than {xlsx.ROWS_PER_SHEET - 1:,} records: continued over 2 sheets"]


def ooxml_unescaped(text: str) -> str:
    """What Excel reads from OOXML text: _xHHHH_ is the character U+HHHH (so _x005F_ is '_')."""
    return re.sub(r"_x([0-9A-Fa-f]{4})_", lambda m: chr(int(m.group(1), 16)), text)


AWKWARD_TEXT = ["a\x01b\x1fc", "_x0041_ stays literal", "crlf\r\nand cr\r", "non\ufffecharacter\uffff",
                "  leading", "trailing \t", "<b>&amp;</b> > <", "😀 emoji 東京", "tab\there\nnewline",
                "\x00", "", "=SUM(A1)", "_x", "x_"]


def test_awkward_text_round_trips_through_xml_and_ooxml_escapes() -> None:
    table = described(pa.table({"title": AWKWARD_TEXT}))
    data, writer = write("xlsx", table, batch_size=5)
    assert writer.warnings == []
    assert [ooxml_unescaped(row[0].value) for row in cells(data)[1:]] == AWKWARD_TEXT
    with zipfile.ZipFile(io.BytesIO(data)) as package:
        sheet = package.read("xl/worksheets/sheet1.xml").decode()
    assert "_x0001_" in sheet and "_x005F_x0041_" in sheet and "_x000D_" in sheet and "_xFFFE_" in sheet
    assert '<t xml:space="preserve">  leading</t>' in sheet and "<t>tab" in sheet


def test_labels_with_xml_characters_and_awkward_numbers() -> None:
    fields = [Field("a", "text", "A & <B>"), Field("n", "int", "N \"quoted\""), Field("x", "double", "X_x0041_")]
    ints = [2**62, -(2**62), 0, 2**53 + 1, -1, None]
    doubles = [1e300, -1e-300, 5e-324, 0.1, -0.0, 1 / 3]
    table = pa.table({"a": ["1", "2", "3", "4", "5", "6"], "n": pa.array(ints, pa.int64()), "x": doubles})
    table = table.replace_schema_metadata(with_fields(table.schema, fields).metadata)
    header, *rows = cells(write("xlsx", table, {"use_labels": True})[0])
    assert [ooxml_unescaped(c.value) for c in header] == ["A & <B>", 'N "quoted"', "X_x0041_"]
    assert [r[1].value for r in rows] == ints  # written exactly; Excel itself keeps 15-17 digits
    assert all(type(r[1].value) is int for r in rows[:-1]) and {r[1].data_type for r in rows} == {"n"}
    assert [r[2].value for r in rows] == doubles


def test_dates_before_1970_and_datetimes_in_another_timezone() -> None:
    table = described(pa.table({
        "day": pa.array([date(1969, 12, 31), date(1900, 3, 1), date(1950, 6, 15)], pa.date32()),
        "at": pa.array([datetime(1969, 12, 31, 23, 30, tzinfo=timezone.utc),
                        datetime(1950, 6, 15, 12, 0, 0, 500000, tzinfo=timezone.utc), None], DATETIME),
    }))
    rows = cells(write("xlsx", table, {"timezone": "America/New_York"})[0])[1:]
    assert [r[0].value for r in rows] == [datetime(1969, 12, 31), datetime(1900, 3, 1), datetime(1950, 6, 15)]
    assert rows[0][1].value == datetime(1969, 12, 31, 18, 30)
    assert rows[1][1].value == datetime(1950, 6, 15, 8, 0, 0, 500000)  # EDT: UTC-4
    assert rows[2][1].value is None and rows[0][1].is_date


def test_long_text_is_cut_in_utf16_units_without_splitting_a_pair() -> None:
    table = described(pa.table({"title": ["😀" * 20_000, "é" * 32_767]}))
    data, writer = write("xlsx", table)
    first, second = (row[0].value for row in cells(data)[1:])
    assert first == "😀" * (xlsx.CELL_TEXT_LIMIT // 2) and second == "é" * 32_767
    assert writer.warnings == ["1 value(s) of field 'title' cut to Excel's 32,767-character cell limit"]


class ForwardOnly(io.RawIOBase):
    """An output that cannot seek or tell, like a gzip stream or a size-bounded file."""

    def __init__(self) -> None:
        super().__init__()
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:  # type: ignore[override]
        self.data += b
        return len(b)


def test_package_parts_and_a_forward_only_output() -> None:
    table = awkward_table()
    writer, out = open_writer("xlsx", table, out=ForwardOnly())
    for batch in table.to_batches(max_chunksize=2):
        writer.write(batch)
    writer.close()
    data = bytes(out.data)
    with zipfile.ZipFile(io.BytesIO(data)) as package:
        assert package.testzip() is None
        assert sorted(package.namelist()) == sorted([
            "[Content_Types].xml", "_rels/.rels", "xl/workbook.xml", "xl/_rels/workbook.xml.rels",
            "xl/styles.xml", "xl/worksheets/sheet1.xml"])
        for name in package.namelist():
            ElementTree.fromstring(package.read(name))  # every part is well-formed XML
    assert sheets(data)["Sheet1"][1][0].value == "Fête de la musique"


def test_abort_writes_nothing_more() -> None:
    table = awkward_table()
    writer, out = open_writer("xlsx", table)
    writer.write(table.to_batches()[0])
    spool = writer.writer.package.spool
    size = len(out.getvalue())
    writer.abort()
    writer.abort()
    assert len(out.getvalue()) == size and spool.file.closed  # the sheet's temporary file is gone


def test_join_rows_lays_values_between_the_chosen_markup() -> None:
    slots = [Slot(pa.array(["1", "2", "3"]), (("<r>", ":"),)),
             Slot(pa.array(["a", None, "c"]), (("[", "]"), ("{", "}"), ("-", "")), np.array([0, 1, 1])),
             Slot(pa.array(["x", "y", None]).slice(0, 3), (("(", ")"), ("", "")))]
    assert join_rows(slots, ";").tobytes() == b"<r>1:[a](x);<r>2:-(y);<r>3:{c};"


@pytest.mark.parametrize("length", [0, 1, 3, 4096, 1_000_003])
def test_crc32_combine_agrees_with_zlib(length: int) -> None:
    head, rest = b"<?xml head?>", bytes(range(256)) * (length // 256) + b"x" * (length % 256)
    assert zipstream.crc32_combine(zlib.crc32(head), zlib.crc32(rest), len(rest)) == zlib.crc32(head + rest)


def test_zip64_fields_where_sizes_and_offsets_need_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the zip64 threshold lowered, the sheet (sizes) and the parts after it (offsets)
    take zip64 fields, and so does the end of the directory; zipfile and openpyxl still read it."""
    monkeypatch.setattr(zipstream, "ZIP64_LIMIT", 1_000)
    data, _ = write("xlsx", awkward_table())
    with zipfile.ZipFile(io.BytesIO(data)) as package:
        assert package.testzip() is None
        sheet = package.getinfo("xl/worksheets/sheet1.xml")
        assert sheet.file_size > 1_000 and sheet.extract_version == 45
    assert b"PK\x06\x06" in data and b"PK\x06\x07" in data  # zip64 end of directory and its locator
    assert sheets(data)["Sheet1"][1][0].value == "Fête de la musique"


def test_an_entry_chains_a_head_and_parts_deflated_apart() -> None:
    """Parts deflated by separate spools (side by side, in threads) and a head deflated last
    make one entry zipfile inflates whole, its CRC-32 right."""
    rng = np.random.default_rng(2)
    pieces = [rng.integers(0, 8, size, dtype=np.uint8).tobytes() for size in (70_000, 0, 5, 300_000)]
    spools = [zipstream.DeflatedSpool(2) for _ in pieces]
    try:
        for spool, piece in zip(spools, pieces):
            spool.write(piece)
        out = io.BytesIO()
        archive = zipstream.ZipWriter(out)
        archive.add(spools[-1].entry("data.bin", b"HEAD", [spool.part() for spool in spools[:-1]]))
        archive.close()
    finally:
        for spool in spools:
            spool.close()
    with zipfile.ZipFile(out) as package:
        assert package.testzip() is None
        assert package.read("data.bin") == b"HEAD" + b"".join(pieces)
