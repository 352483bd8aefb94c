"""GeoPackage and File Geodatabase, written by GDAL (formats/gdal_layer.py): read back with
SQLite itself (the GeoPackage tables a reader relies on) and with GDAL through pyogrio."""
from __future__ import annotations

import io
import sqlite3
import zipfile

import pytest
import shapely

from domain.fields import fields_of
from formats import REGISTRY, FormatNotApplicable
from tests.formats.gdal_helpers import expected_records, fail_halfway
from tests.formats.samples import awkward_table, empty_table, null_table
from tests.readback import export, gdal_layers

FIELDS = ["title", "attendance", "price", "free", "day", "starts_at", "category", "organiser_name", "organiser_name_2"]


def named(format_name: str, name: str, table, options=None) -> bytes:
    fmt, fields = REGISTRY.get(format_name), fields_of(table.schema)
    out = io.BytesIO()
    writer = fmt.open(out, table.schema, fields, fmt.parse_options(options or {}, fields), name=name)
    for batch in table.to_batches(max_chunksize=4):
        writer.write(batch)
    writer.close()
    return out.getvalue()


def test_gpkg_tables_srs_and_spatial_index(tmp_path):
    path = tmp_path / "out.gpkg"
    path.write_bytes(named("gpkg", "demo-events", awkward_table(), {"epsg": 2154}))
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA application_id").fetchone()[0] == 0x47504B47  # "GPKG"
        assert db.execute("SELECT table_name, data_type, srs_id FROM gpkg_contents").fetchall() == [
            ("demo-events", "features", 2154)]
        assert db.execute("SELECT organization, organization_coordsys_id FROM gpkg_spatial_ref_sys WHERE srs_id = 2154"
                          ).fetchone() == ("EPSG", 2154)
        assert db.execute("SELECT column_name, geometry_type_name, srs_id FROM gpkg_geometry_columns").fetchall() == [
            ("geom", "GEOMETRY", 2154)]
        assert db.execute("SELECT extension_name FROM gpkg_extensions WHERE table_name = 'demo-events'").fetchall() == [
            ("gpkg_rtree_index",)]
        # one entry a feature with a geometry (five of six)
        assert db.execute('SELECT count(*) FROM "rtree_demo-events_geom"').fetchone()[0] == 5
        types = {row[1]: row[2] for row in db.execute('PRAGMA table_info("demo-events")')}
        assert types == {"fid": "INTEGER", "geom": "GEOMETRY", "title": "TEXT", "attendance": "INTEGER", "price": "REAL",
                         "free": "BOOLEAN", "day": "DATE", "starts_at": "DATETIME", "category": "TEXT",
                         "organiser_name": "TEXT", "organiser_name_2": "TEXT"}
        # GeoPackage keeps datetimes as ISO 8601 in UTC, whatever the `timezone` option
        assert db.execute('SELECT starts_at FROM "demo-events" ORDER BY fid LIMIT 1').fetchone()[0] == "2024-06-21T18:30:00Z"


def test_gpkg_round_trip(tmp_path):
    data, writer = export("gpkg", awkward_table())
    (layer,) = gdal_layers(data, "gpkg", tmp_path).values()
    assert layer.name == "export" and layer.crs == "EPSG:4326" and writer.skipped == 0
    assert list(layer.field_types) == FIELDS
    for got, want in zip(layer.records, expected_records(), strict=True):
        assert {k: got[k] for k in FIELDS if k not in ("day", "starts_at")} == {k: want[k] for k in FIELDS if k not in ("day", "starts_at")}
        assert got["day"] == want["day"]
        assert got["starts_at"] == (want["starts_at"] and want["starts_at"].replace("+00:00", "Z"))
        assert (got["geometry"] is None) == (want["shape"] is None)
        if want["shape"] is not None:
            assert shapely.equals_exact(got["geometry"], want["shape"], tolerance=1e-12)


def test_fgdb_zip_holds_one_gdb_with_a_feature_class_per_kind(tmp_path):
    data = named("fgdb", "demo-events", awkward_table(), {"epsg": 2154})
    members = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert members and all(m.startswith("demo-events.gdb/") for m in members)
    layers = gdal_layers(data, "fgdb", tmp_path)
    assert sorted(layers) == ["demo_events_line", "demo_events_point", "demo_events_polygon"]
    assert {layer.crs for layer in layers.values()} == {"EPSG:2154"}
    titles = {name: [r["title"] for r in layer.records] for name, layer in layers.items()}
    # the record without a geometry goes with the most records (points and polygons tie: points first)
    assert titles == {"demo_events_point": ["Fête de la musique", "東京 イベント", None],
                      "demo_events_line": ["line one\nline two"],
                      "demo_events_polygon": ['Say "hello", world; ok', awkward_table().column("title")[4].as_py()]}
    assert [r["geometry"] for r in layers["demo_events_point"].records][2] is None


def test_fgdb_points_are_one_feature_class_named_after_the_dataset(tmp_path):
    table = awkward_table().drop_columns(["geo_shape"])
    layers = gdal_layers(named("fgdb", "demo-events", table), "fgdb", tmp_path)
    (layer,) = layers.values()
    assert layer.name == "demo_events" and len(layer.records) == 6  # FileGDB's names: letters, digits, _
    for got, want in zip(layer.records, expected_records(), strict=True):
        assert got["attendance"] == want["attendance"] and got["title"] == want["title"]
        got_point = None if got["geometry"] is None else (got["geometry"].x, got["geometry"].y)
        assert got_point == (want["point"] and pytest.approx(want["point"], abs=1e-8))  # FileGDB's grid: 1e-9°


def test_fgdb_skips_geometry_collections():
    table = awkward_table()
    shapes = table.column("geo_shape").to_pylist()
    shapes[0] = shapely.to_wkb(shapely.GeometryCollection([shapely.Point(1, 2), shapely.LineString([(0, 0), (1, 1)])]))
    import pyarrow as pa
    table = table.set_column(table.schema.get_field_index("geo_shape"), table.schema.field("geo_shape"),
                             pa.array(shapes, pa.binary()))
    _, writer = export("fgdb", table)
    assert writer.skipped == 1 and "geometry collection" in writer.warnings[0]


@pytest.mark.parametrize("name", ["gpkg", "fgdb"])
@pytest.mark.parametrize("table", [empty_table, null_table], ids=["empty", "nulls"])
def test_empty_and_null_tables(tmp_path, name, table):
    data, writer = export(name, table())
    layers = gdal_layers(data, name, tmp_path)
    assert len(layers) == 1 and writer.skipped == 0
    (layer,) = layers.values()
    assert len(layer.records) == table().num_rows
    assert all(r["geometry"] is None and r["title"] is None for r in layer.records)


@pytest.mark.parametrize("name", ["gpkg", "fgdb"])
def test_refuses_a_dataset_without_geometry(name):
    table = awkward_table().drop_columns(["geo_shape", "geo_point_2d"])
    with pytest.raises(FormatNotApplicable):
        REGISTRY.get(name).check(fields_of(table.schema))


@pytest.mark.parametrize("name", ["gpkg", "fgdb"])
def test_scratch_removed_after_a_failure_and_an_abort(tmp_path, monkeypatch, name):
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(Exception):
        fail_halfway(name, awkward_table())
    assert list(tmp_path.iterdir()) == []
    fmt, table = REGISTRY.get(name), awkward_table()
    fields = fields_of(table.schema)
    writer = fmt.open(io.BytesIO(), table.schema, fields, fmt.parse_options({}, fields))
    writer.write(table.to_batches(max_chunksize=2)[0])
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_fgdb_field_names_are_laundered_the_same_every_time(tmp_path):
    import pyarrow as pa

    from domain.fields import GEO_POINT
    table = pa.table({"2019 count": [1], "a-b": ["x"], "A_B": ["y"], "objectid": [3],
                      "geo_point_2d": pa.array([{"lon": 1.0, "lat": 2.0}], GEO_POINT)})
    (layer,) = gdal_layers(export("fgdb", table)[0], "fgdb", tmp_path).values()
    assert list(layer.field_types) == ["F_2019_count", "a_b", "A_B_1", "objectid_1"]
    assert [layer.records[0][k] for k in layer.field_types] == [1, "x", "y", 3]
