"""Types as the readers people use see them: every field type (with nulls, extreme numbers and
non-Latin text) written by each format and read back by an independent reader — GDAL through
pyogrio for the geographic formats, openpyxl for xlsx, pyarrow for Parquet — comparing each
value and its type, not counts only."""
from __future__ import annotations

import io
from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from domain.fields import DATETIME, GEO_POINT
from tests.readback import export, gdal_layers, geo_table

ZONE = "Europe/Paris"
INTS = [1, -7, None, 2**40]
DOUBLES = [1.5, -1e-7, None, 1e300]
BOOLS = [True, False, None, True]
DAYS = [date(2024, 6, 21), date(1999, 12, 31), None, date(2030, 1, 1)]
TIMES = [datetime(2024, 6, 21, 18, 30, tzinfo=timezone.utc), datetime(1999, 12, 31, 23, 59, 59, tzinfo=timezone.utc), None,
         datetime(2030, 1, 1, 12, 0, 0, 123000, tzinfo=timezone.utc)]
TEXTS = ["Fête", "東京 イベント", None, "Ünïcødé; \"quoted\", comma"]
NAMES = ["n", "x", "ok", "day", "at", "s"]


def table() -> pa.Table:
    return geo_table({
        "label": ["one", "two", "three", "four"],  # KML names placemarks by the first text field
        "n": pa.array(INTS, pa.int64()), "x": pa.array(DOUBLES, pa.float64()), "ok": pa.array(BOOLS),
        "day": pa.array(DAYS), "at": pa.array(TIMES, DATETIME), "s": pa.array(TEXTS),
        "geo_point_2d": pa.array([{"lon": 2.35, "lat": 48.85}] * 4, GEO_POINT)})


def iso(value: datetime | None, with_micros: bool = False) -> str | None:
    if value is None:
        return None
    local = value.astimezone(ZoneInfo(ZONE))
    return local.isoformat(timespec="microseconds" if with_micros else "auto")


# What GDAL reads from each format: field types (as ogrinfo names them), and how dates and
# datetimes come back as text. A shapefile's DBF has no datetime type (text, ISO 8601 with the
# offset) and KML no date type at all; FlatGeobuf's one temporal type is DateTime.
GDAL_TYPES = {
    "fgb": {"n": "Integer64", "x": "Real", "ok": "Boolean", "day": "DateTime", "at": "DateTime", "s": "String"},
    "shp": {"n": "Integer64", "x": "Real", "ok": "Boolean", "day": "Date", "at": "String", "s": "String"},
    "kml": {"n": "Real", "x": "Real", "ok": "Boolean", "day": "String", "at": "String", "s": "String"},
    "gpkg": {"n": "Integer64", "x": "Real", "ok": "Boolean", "day": "Date", "at": "DateTime", "s": "String"},
    "fgdb": {"n": "Integer64", "x": "Real", "ok": "Integer", "day": "Date", "at": "DateTime", "s": "String"},
}
UTC_ONLY = {"gpkg", "fgdb"}  # GeoPackage's standard and FileGDB keep instants in UTC


@pytest.mark.parametrize("format_name", sorted(GDAL_TYPES))
def test_gdal_reads_each_type_and_value(tmp_path, format_name):
    data, _ = export(format_name, table(), {"timezone": ZONE})
    (layer,) = gdal_layers(data, format_name, tmp_path).values()
    assert {k: layer.field_types[k] for k in NAMES} == GDAL_TYPES[format_name]
    records = layer.records
    assert [r["n"] for r in records] == INTS  # 2**40 kept (as a double in KML: wider than its int)
    assert [r["s"] for r in records] == TEXTS
    assert [r["x"] for r in records] == DOUBLES
    assert [r["ok"] for r in records] == (BOOLS if format_name != "fgdb" else [b if b is None else int(b) for b in BOOLS])
    day_suffix = "T00:00:00" if format_name == "fgb" else ""
    assert [r["day"] for r in records] == [d and d.isoformat() + day_suffix for d in DAYS]
    ats = [r["at"] for r in records]
    if format_name in UTC_ONLY:  # the same instants, in UTC (pyogrio leaves GeoPackage's Z out)
        utc = [t and t.replace(tzinfo=None).isoformat(timespec="milliseconds") for t in TIMES]
        assert [a and a.removesuffix("Z") for a in ats] == [u and u.removesuffix(".000") for u in utc]
        return
    assert ats[:3] == [iso(t) for t in TIMES[:3]]
    # GDAL keeps milliseconds of a DateTime; text keeps what was written
    assert ats[3] == (iso(TIMES[3])[:23] + "+01:00" if format_name == "fgb" else iso(TIMES[3], with_micros=True))


def test_xlsx_dates_and_datetimes_are_dates_in_the_export_zone():
    data, _ = export("xlsx", table(), {"timezone": ZONE})
    sheet = openpyxl.load_workbook(io.BytesIO(data)).worksheets[0]
    rows = list(sheet.iter_rows(values_only=False))
    header = [c.value for c in rows[0]]
    assert header[:7] == ["label", *NAMES]
    column = {name: [row[header.index(name)] for row in rows[1:]] for name in NAMES}
    assert [c.value for c in column["n"]] == INTS and all(c.data_type == "n" for c in column["n"])
    assert [c.value for c in column["x"]] == DOUBLES
    assert [c.value for c in column["ok"]] == BOOLS and column["ok"][0].data_type == "b"
    assert [c.value for c in column["day"]] == [d and datetime(d.year, d.month, d.day) for d in DAYS]
    assert all(c.is_date for c in column["day"] if c.value is not None)
    assert column["day"][0].number_format == "yyyy-mm-dd"
    want = [t and t.astimezone(ZoneInfo(ZONE)).replace(tzinfo=None) for t in TIMES]
    got = [c.value for c in column["at"]]
    assert got[:3] == want[:3] and abs((got[3] - want[3]).total_seconds()) < 0.001  # Excel keeps milliseconds
    assert all(c.is_date for c in column["at"] if c.value is not None)
    assert column["at"][0].number_format == "yyyy-mm-dd hh:mm:ss"
    assert [c.value for c in column["s"]] == TEXTS


def test_parquet_keeps_every_arrow_type():
    data, _ = export("parquet", table(), {"timezone": ZONE})
    back = pq.read_table(io.BytesIO(data))
    types = dict(zip(back.schema.names, back.schema.types))
    assert {k: types[k] for k in NAMES} == {
        "n": pa.int64(), "x": pa.float64(), "ok": pa.bool_(), "day": pa.date32(),
        "at": pa.timestamp("us", tz=ZONE), "s": pa.string()}
    assert back.column("n").to_pylist() == INTS and back.column("x").to_pylist() == DOUBLES
    assert back.column("ok").to_pylist() == BOOLS and back.column("day").to_pylist() == DAYS
    assert back.column("at").to_pylist() == [t and t.astimezone(ZoneInfo(ZONE)) for t in TIMES]
    assert back.column("s").to_pylist() == TEXTS


def test_parquet_geometries_are_geoparquet_1_1(tmp_path):
    """Points and shapes come back as WKB geometries that the `geo` metadata describes, read by
    pyarrow and shapely; by GDAL's Parquet driver too where this GDAL has it."""
    import orjson
    import pyogrio
    import shapely

    shapes = [shapely.Point(2.35, 48.85), None, shapely.Polygon([(0, 0), (1, 0), (1, 1), (0, 0)]), shapely.Point(-1, -2)]
    source = table().append_column("geo_shape", pa.array([s and shapely.to_wkb(s) for s in shapes], pa.binary()))
    source = geo_table({c: source.column(c) for c in source.column_names}, {"geo_shape": "geo_shape"})
    data, _ = export("parquet", source)
    file = pq.ParquetFile(io.BytesIO(data))
    geo = orjson.loads(file.metadata.metadata[b"geo"])
    assert geo["version"] == "1.1.0" and geo["primary_column"] == "geo_shape"
    assert {name: (c["encoding"], c["geometry_types"]) for name, c in geo["columns"].items()} == {
        "geo_shape": ("WKB", ["Point", "Polygon"]), "geo_point_2d": ("WKB", ["Point"])}
    back = file.read()
    assert back.schema.field("geo_shape").type == back.schema.field("geo_point_2d").type == pa.binary()
    assert [v and shapely.from_wkb(v) for v in back.column("geo_shape").to_pylist()] == shapes
    assert [shapely.from_wkb(v) for v in back.column("geo_point_2d").to_pylist()] == [shapely.Point(2.35, 48.85)] * 4
    if "Parquet" not in pyogrio.list_drivers():
        return  # this GDAL was built without Arrow/Parquet
    path = tmp_path / "out.parquet"
    path.write_bytes(data)
    assert pyogrio.read_info(path)["geometry_name"] == "geo_shape"
