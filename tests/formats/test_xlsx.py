"""XLSX writer: read back with openpyxl, compared with the samples."""
from __future__ import annotations

import gzip
import io
import os
from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import openpyxl
import pyarrow as pa
import pytest
import shapely

from domain.fields import DATETIME, Field, fields_of, with_fields
from formats import REGISTRY, OptionError
from formats import xlsx
from tests.formats.samples import awkward_table, empty_table, null_table, write

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


def test_temporary_files_are_gone_after_close() -> None:
    _, writer = write("xlsx", awkward_table())
    assert not os.path.exists(writer.writer.tmpdir.name)


def test_real_row_limit_agrees_with_xlsxwriter() -> None:
    """Sheet1 full but for one row: the next records go to Sheet2. Were the count off by one,
    xlsxwriter would return -1 and the writer raise."""
    table = awkward_table()
    fmt = REGISTRY.get("xlsx")
    fields = fields_of(table.schema)
    out = io.BytesIO()
    writer = fmt.open(out, table.schema, fields, fmt.parse_options({}, fields))
    writer.writer.row = xlsx.ROWS_PER_SHEET - 1
    writer.write(table.to_batches()[0])
    writer.close()
    book = openpyxl.load_workbook(io.BytesIO(out.getvalue()))
    assert book.sheetnames == ["Sheet1", "Sheet2"]
    assert book["Sheet1"].cell(xlsx.ROWS_PER_SHEET, 1).value == "Fête de la musique"
    assert [book["Sheet2"].cell(row, 1).value for row in (1, 2)] == ["title", 'Say "hello", world; ok']


def test_out_of_bounds_is_an_error_not_a_silent_loss() -> None:
    table = awkward_table()
    fmt = REGISTRY.get("xlsx")
    fields = fields_of(table.schema)
    writer = fmt.open(io.BytesIO(), table.schema, fields, fmt.parse_options({}, fields))
    writer.writer.row = xlsx.ROWS_PER_SHEET + 1  # a miscount: past xlsxwriter's last row
    with pytest.raises(RuntimeError, match="code -1"):
        writer.write(table.to_batches()[0])
    writer.writer.row = 1
    writer.close()
