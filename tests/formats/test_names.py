"""Names inside and of an export: shapefile members and the xlsx sheet after the dataset,
within the rules of Windows and Excel."""
from __future__ import annotations

import io
import zipfile

import openpyxl
import pytest

from domain.fields import fields_of
from formats import REGISTRY, xlsx
from formats.names import MAX_SHEET, file_stem, sheet_name
from tests.formats.samples import awkward_table

WINDOWS_FORBIDDEN = set('<>:"/\\|?*')
EXCEL_FORBIDDEN = set(":\\/?*[]")


def written(format_name: str, name: str | None, table=None, options=None) -> bytes:
    table = awkward_table() if table is None else table
    fmt, fields = REGISTRY.get(format_name), fields_of(table.schema)
    out = io.BytesIO()
    writer = fmt.open(out, table.schema, fields, fmt.parse_options(options or {}, fields), name=name)
    for batch in table.to_batches(max_chunksize=4):
        writer.write(batch)
    writer.close()
    return out.getvalue()


@pytest.mark.parametrize("name,stem", [
    ("demo-events", "demo-events"), ("con", "con_"), ("NUL", "NUL_"), ("com1.backup", "com1.backup_"),
    ('a<b>c:d"e/f\\g|h?i*j', "a_b_c_d_e_f_g_h_i_j"), ("trailing. ", "trailing"), ("", "export"), (None, "export"),
    ("tab\there", "tab_here"), ("x" * 300, "x" * 100),
])
def test_file_stems_are_safe_on_windows(name, stem):
    assert file_stem(name) == stem
    assert not WINDOWS_FORBIDDEN & set(stem) and not stem.endswith((".", " "))


def test_export_file_names_use_the_safe_stem():
    assert REGISTRY.get("shp").filename("aux", {}) == "aux_.zip"
    assert REGISTRY.get("csv").filename("demo-events", {"compressed": True}) == "demo-events.csv.gz"


@pytest.mark.parametrize("name,number,sheet", [
    ("demo-events", 1, "demo-events"), ("demo-events", 2, "demo-events (2)"),
    ("a" * 40, 1, "a" * 31), ("a" * 40, 12, "a" * 26 + " (12)"), ("what?[now]*", 1, "what_now_"),
    ("'quoted'", 1, "quoted"), ("History", 1, "History_"), (None, 3, "Sheet3"), ("///", 1, "_"),
])
def test_sheet_names_follow_excels_rules(name, number, sheet):
    got = sheet_name(name, number)
    assert got == sheet and len(got) <= MAX_SHEET and not EXCEL_FORBIDDEN & set(got)
    assert not got.startswith("'") and not got.endswith("'")


def test_shapefile_members_are_named_after_the_dataset():
    table = awkward_table().drop_columns(["geo_shape"])
    names = sorted(zipfile.ZipFile(io.BytesIO(written("shp", "demo-events", table))).namelist())
    assert names == [f"demo-events.{p}" for p in ("cpg", "dbf", "prj", "shp", "shx")]
    names = sorted(zipfile.ZipFile(io.BytesIO(written("shp", "lpt1"))).namelist())
    assert names == sorted(f"lpt1__{kind}.{p}" for kind in ("point", "line", "polygon") for p in ("cpg", "dbf", "prj", "shp", "shx"))


def test_shapefile_members_read_back_by_gdal(tmp_path):
    import pyogrio

    path = tmp_path / "demo-events.zip"
    path.write_bytes(written("shp", "demo-events", awkward_table().drop_columns(["geo_shape"])))
    assert [name for name, _ in pyogrio.list_layers(path)] == ["demo-events"]


def test_xlsx_sheet_is_named_after_the_dataset(monkeypatch):
    book = openpyxl.load_workbook(io.BytesIO(written("xlsx", "demo-events")))
    assert book.sheetnames == ["demo-events"]
    monkeypatch.setattr(xlsx, "ROWS_PER_SHEET", 3)
    book = openpyxl.load_workbook(io.BytesIO(written("xlsx", "a-dataset-whose-id-is-longer-than-excel-allows")))
    assert book.sheetnames == ["a-dataset-whose-id-is-longer-th", "a-dataset-whose-id-is-longe (2)",
                               "a-dataset-whose-id-is-longe (3)"]
