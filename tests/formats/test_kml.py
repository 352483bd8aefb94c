"""The KML writer's text path (formats/kml.py): every geometry type mixed in one batch, awkward
coordinates, text and field names needing escapes, read back by GDAL's KML reader (Fiona:
geometries and names), by GDAL's LIBKML reader (pyogrio: every attribute) and ElementTree."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, timezone

import pyarrow as pa
import pyogrio
import pytest
import shapely

from domain.fields import DATETIME, GEO_POINT
from tests.formats.gdal_helpers import expected_records
from tests.formats.samples import awkward_table, open_writer, write
from tests.formats.test_gdal_formats import KML, kml_readable, placemarks, read  # noqa: F401 (kml_readable: autouse)

HOLE = [(1, 1), (2, 1), (2, 2), (1, 1)]
SHAPES = [
    shapely.Polygon([(0, 0), (10, 0), (10, 10), (0, 10)], [HOLE, [(5, 5), (6, 5), (6, 6), (5, 5)]]),
    shapely.MultiPolygon([shapely.Polygon([(0, 0), (1, 0), (1, 1)]), shapely.Polygon([(5, 5), (9, 5), (9, 9)], [[(6, 6), (7, 6), (7, 7)]])]),
    shapely.LineString([(-180, -90), (180, 90), (1e-7, -1e-9)]),
    shapely.MultiLineString([[(0, 0), (1, 1)], [(2, 2), (3.5, 3.25)]]),
    shapely.Point(-180, 90),
    shapely.MultiPoint([(0, 0), (1e-7, 45.123456789012)]),
    shapely.GeometryCollection([shapely.Point(1, 2), shapely.MultiPoint([(3, 4), (5, 6)]), shapely.Polygon([(0, 0), (1, 0), (1, 1)])]),
    shapely.Point(2.5, 3.5, 100.25),
    None,
    shapely.Polygon(),
    shapely.LineString(),
    shapely.Point(),
    shapely.Point(179.9999999, -0.0000123),
]
TEXTS = ['<b>Tom & "Jerry"</b> \'s', "bell\x07 vtab\x0b ff\x0c end\ufffe", "crlf\r\nline", "Ünïcødé 東京 🎉", "  leading",
         None, "&amp;", "a]]>b", "", "x", "y", "z", "w"]
XML_CLEAN = {TEXTS[1]: "bell vtab ff end"}  # characters XML 1.0 cannot hold are removed


def shapes_table() -> pa.Table:
    n = len(SHAPES)
    return pa.table({
        "label": TEXTS,
        "a&b<c>\"d": pa.array(range(n), pa.int64()),
        "ratio": pa.array([1e-7, -0.0, 1e300, None, 0.1 + 0.2, 12.5, -3.25, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0], pa.float64()),
        "when": pa.array([datetime(1950, 6, 1, 12, 0, tzinfo=timezone.utc), None] + [datetime(2024, 3, 31, 1, 0, tzinfo=timezone.utc)] * (n - 2), DATETIME),
        "geo_shape": pa.array([None if s is None else shapely.to_wkb(s) for s in SHAPES], pa.binary()),
    })


def simple_parts(geometry) -> list:
    """The points, lines and polygons of a geometry, however nested: KML's <MultiGeometry> does
    not say whether a collection within a collection was a multi-point or a collection."""
    if shapely.get_type_id(geometry) < 4:
        return [geometry]
    return [p for part in shapely.get_parts(geometry) for p in simple_parts(part)]


def same_geometry(got, want) -> bool:
    if want is None or shapely.is_empty(want):
        return got is None or shapely.is_empty(got)
    got_parts, want_parts = simple_parts(got), simple_parts(want)
    return (got.geom_type == want.geom_type and shapely.has_z(got) == shapely.has_z(want) and len(got_parts) == len(want_parts)
            and all(shapely.equals_exact(g, w, tolerance=1e-9) for g, w in zip(got_parts, want_parts)))


def libkml_records(data: bytes, tmp_path) -> pa.Table:
    """Every placemark with its ExtendedData, as GDAL's LIBKML driver (pyogrio's GDAL) reads it."""
    path = tmp_path / "libkml.kml"
    path.write_bytes(data)
    return pyogrio.read_arrow(path)[1]


def test_every_geometry_type_in_one_batch(tmp_path):
    data, writer = write("kml", shapes_table(), batch_size=100)
    assert writer.skipped == 0 and len(placemarks(data)) == len(SHAPES)
    _, _, features = read(data, tmp_path, "kml")  # GDAL's KML reader skips placemarks without geometry
    with_geometry = [s for s in SHAPES if s is not None and not (s.geom_type == "Point" and s.is_empty)]
    assert len(features) == len(with_geometry)
    for feature, want in zip(features, with_geometry):
        assert same_geometry(shapely.geometry.shape(feature.geometry), want), (feature.geometry, want)
    got = [g and shapely.from_wkb(g) for g in libkml_records(data, tmp_path).column("wkb_geometry").to_pylist()]
    assert all(same_geometry(g, w) for g, w in zip(got, SHAPES, strict=True))
    text = data.decode()
    assert "<coordinates>-180,-90 180,90 0.0000001,-0.000000001</coordinates>" in text  # no exponents
    assert "<coordinates>2.5,3.5,100.25</coordinates>" in text  # z kept
    assert text.count("<innerBoundaryIs>") == 3 and "nan" not in text
    # GDAL's style for lines and polygons, before the ExtendedData
    assert [m.find(f"{KML}Style") is not None for m in ET.fromstring(data).iter(f"{KML}Placemark")] == [
        True, True, True, True, False, False, False, False, False, True, True, False, False]


def test_text_and_field_names_needing_escapes(tmp_path):
    table = shapes_table()
    data, _ = write("kml", table, {"timezone": "Europe/Paris"}, batch_size=5)
    marks = placemarks(data)  # ElementTree: a strict XML parser
    assert [m.pop("<name>") for m in marks] == [XML_CLEAN.get(t, t) for t in TEXTS]
    schema = {f.get("name"): f.get("type") for f in ET.fromstring(data).iter(f"{KML}SimpleField")}
    assert schema == {'a&b<c>"d': "int", "ratio": "double", "when": "string"}
    assert marks[0] == {'a&b<c>"d': "0", "ratio": "1e-7", "when": "1950-06-01T13:00:00+01:00"}
    assert marks[4]["ratio"] == "0.30000000000000004" and marks[1]["ratio"] == "-0" and "when" not in marks[1]
    assert [m["a&b<c>\"d"] for m in marks] == [str(i) for i in range(len(TEXTS))]  # ids go on across batches
    assert [m.get("id") for m in ET.fromstring(data).iter(f"{KML}Placemark")] == [f"export.{i + 1}" for i in range(len(TEXTS))]
    records = libkml_records(data, tmp_path)
    assert records.column("Name").to_pylist() == [XML_CLEAN.get(t, t) for t in TEXTS]
    assert records.column('a&b<c>"d').to_pylist() == list(range(len(TEXTS)))
    assert records.column("ratio").to_pylist() == table.column("ratio").to_pylist()


def test_awkward_table_attributes_read_back_by_gdal(tmp_path):
    data, _ = write("kml", awkward_table())
    records = libkml_records(data, tmp_path).to_pylist()
    wanted = expected_records()
    assert len(records) == len(wanted)
    for got, want in zip(records, wanted):
        assert got["Name"] == want["title"]
        assert {k: got[k] for k in ("attendance", "free", "day", "starts_at", "category", "organiser_name", "organiser_name_2")} == {
            # 2**40 does not fit KML's int: declared double, still exact
            "attendance": None if want["attendance"] is None else float(want["attendance"]), "free": want["free"],
            "day": want["day"], "starts_at": want["starts_at"], "category": want["category"],
            "organiser_name": want["organiser_name"], "organiser_name_2": want["organiser_name_2"]}
        assert got["price"] == want["price"]
        got_shape = got["wkb_geometry"] and shapely.from_wkb(got["wkb_geometry"])
        assert same_geometry(got_shape, want["shape"])


def test_header_written_at_close_and_scratch_removed(tmp_path, monkeypatch):
    """The Schema's int types depend on every value, so placemarks wait in a scratch file
    and the close writes the header before them."""
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    table = awkward_table()
    writer, out = open_writer("kml", table)
    writer.write(table.to_batches(max_chunksize=2)[0])
    assert out.getvalue() == b"" and len(list(tmp_path.iterdir())) == 1
    writer.close()
    assert out.getvalue().startswith(b'<?xml version="1.0" encoding="utf-8" ?>\n<kml xmlns="http://www.opengis.net/kml/2.2">')
    assert out.getvalue().count(b"<Placemark ") == 2
    assert out.getvalue().endswith(b"  </Placemark>\n</Folder>\n</Document></kml>\n") and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("values,declared,gdal_type", [
    ([1, -(2**31), 2**31 - 1, None], "int", "OFTInteger"),
    ([1, 2**31, None], "double", "OFTReal"),
    ([1, 2**53 + 1, None], "string", "OFTString"),
])
def test_whole_numbers_get_the_widest_type_that_holds_them(tmp_path, values, declared, gdal_type):
    table = pa.table({"n": pa.array(values, pa.int64()),
                      "geo_point_2d": pa.array([{"lon": 1.0, "lat": 2.0}] * len(values), GEO_POINT)})
    data, _ = write("kml", table, batch_size=1)
    assert {f.get("name"): f.get("type") for f in ET.fromstring(data).iter(f"{KML}SimpleField")} == {"n": declared}
    path = tmp_path / "n.kml"
    path.write_bytes(data)
    meta, table_back = pyogrio.read_arrow(path)
    assert dict(zip(meta["fields"], meta["ogr_types"]))["n"] == gdal_type
    as_read = {"int": int, "double": float, "string": str}[declared]
    assert table_back.column("n").to_pylist() == [None if v is None else as_read(v) for v in values]


@pytest.mark.parametrize("use_labels", [False, True])
def test_points_from_geo_point_2d(use_labels):
    table = awkward_table().drop_columns(["geo_shape"])
    data, _ = write("kml", table, {"use_labels": use_labels})
    points = [m.findtext(f"{KML}Point/{KML}coordinates") for m in ET.fromstring(data).iter(f"{KML}Placemark")]
    assert points == [r["point"] and f"{r['point'][0]:g},{r['point'][1]:g}" for r in expected_records()]
    assert placemarks(data)[0]["Organiser Name 2" if use_labels else "organiser_name_2"] == "A"
    assert b"<Style>" not in data


def test_batches_larger_than_a_slice():
    from domain.fields import GEO_POINT
    from formats.kml import SLICE_ROWS
    n = 2 * SLICE_ROWS + 3
    table = pa.table({"n": pa.array(range(n), pa.int64()),
                      "geo_point_2d": pa.array([{"lon": i / 100, "lat": -i / 1000} for i in range(n)], GEO_POINT)})
    data, _ = write("kml", table, batch_size=n)
    marks = list(ET.fromstring(data).iter(f"{KML}Placemark"))
    assert [m.get("id") for m in marks] == [f"export.{i + 1}" for i in range(n)]
    assert [m.findtext(f"{KML}ExtendedData/{KML}SchemaData/{KML}SimpleData") for m in marks] == [str(i) for i in range(n)]
    coordinates = [tuple(map(float, m.findtext(f"{KML}Point/{KML}coordinates").split(","))) for m in marks]
    assert coordinates == [(i / 100, -i / 1000) for i in range(n)] and marks[0].find(f"{KML}name") is None
