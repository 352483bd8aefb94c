"""The shapefile writer, read back with Fiona from the zip it produces."""
from __future__ import annotations

import gc
import io
import struct
import zipfile

import fiona
import fiona.transform
import numpy as np
import pyarrow as pa
import pytest
import shapely

from domain.fields import Field, fields_of
from formats import REGISTRY, FormatNotApplicable
from formats.shapefile import cut_text
from tests.formats.gdal_helpers import expected_records, fail_halfway
from tests.formats.samples import LONG_TEXT, awkward_table, empty_table, null_table, write

NAMES = {"title": "title", "attendance": "attendance", "price": "price", "free": "free", "day": "day",
         "starts_at": "starts_at", "category": "category", "organiser_name": "organiser_", "organiser_name_2": "organise_1"}


def layers(data: bytes, tmp_path) -> dict[str, list[fiona.Feature]]:
    path = tmp_path / "out.zip"
    path.write_bytes(data)
    out = {}
    for name in fiona.listlayers(f"zip://{path}"):
        with fiona.open(f"zip://{path}", layer=name) as src:
            assert src.crs is not None
            out[name] = (src.schema, src.crs, list(src))
    return out


def test_round_trip_splits_geometry_types_and_keeps_every_value(tmp_path):
    data, writer = write("shp", awkward_table())
    names = sorted(zipfile.ZipFile(io.BytesIO(data)).namelist())
    assert names == sorted(f"export_{k}.{p}" for k in ("point", "line", "polygon") for p in ("shp", "shx", "dbf", "prj", "cpg"))
    assert zipfile.ZipFile(io.BytesIO(data)).read("export_point.cpg").strip() == b"UTF-8"
    found = layers(data, tmp_path)
    by_kind = {"export_point": [0, 3, 5], "export_line": [2], "export_polygon": [1, 4]}
    expected = expected_records()
    for layer, rows in by_kind.items():
        schema, crs, features = found[layer]
        assert crs.to_epsg() == 4326
        assert list(schema["properties"]) == list(NAMES.values())
        assert schema["properties"]["day"] == "date"
        assert len(features) == len(rows)
        for feature, row in zip(features, rows):
            want = expected[row]
            got = {field: feature.properties[short] for field, short in NAMES.items()}
            want_props = {k: v for k, v in want.items() if k in NAMES}
            if want_props["title"] == LONG_TEXT:
                # cut at 254 bytes; DBF pads with spaces, so a trailing space does not come back
                want_props["title"] = LONG_TEXT.encode()[:254].decode("utf-8", "ignore").rstrip(" ")
                assert len(got["title"].encode()) <= 254
            assert got == want_props
            if want["shape"] is None:
                assert feature.geometry is None
            else:
                shape = shapely.geometry.shape(feature.geometry)
                assert shape.geom_type.removeprefix("Multi") == want["shape"].geom_type.removeprefix("Multi")
                assert shapely.hausdorff_distance(shape, want["shape"]) < 1e-5
    assert writer.warnings == ["1 value(s) of DBF field 'title' cut to 254 bytes"]
    assert writer.skipped == 0


def test_point_only_dataset_is_one_shapefile_named_after_the_stem(tmp_path):
    table = awkward_table().drop_columns(["geo_shape"])
    data, _ = write("shp", table)
    assert sorted(zipfile.ZipFile(io.BytesIO(data)).namelist()) == [f"export.{p}" for p in ("cpg", "dbf", "prj", "shp", "shx")]
    (schema, _, features), = layers(data, tmp_path).values()
    assert schema["geometry"] == "Point"
    for feature, want in zip(features, expected_records()):
        if want["point"] is None:
            assert feature.geometry is None
        else:
            assert feature.geometry.coordinates == pytest.approx(want["point"], abs=1e-5)


def test_datetimes_in_the_timezone_option(tmp_path):
    data, _ = write("shp", awkward_table(), {"timezone": "Europe/Paris"})
    _, _, features = layers(data, tmp_path)["export_point"]
    assert [f.properties["starts_at"] for f in features] == ["2024-06-21T20:30:00+02:00", None, "2024-03-31T03:30:00+02:00"]


def test_labels_are_laundered_too(tmp_path):
    data, _ = write("shp", awkward_table(), {"use_labels": True})
    schema, _, _ = layers(data, tmp_path)["export_point"]
    assert list(schema["properties"]) == ["Title", "Attendance", "Price", "Free", "Day", "Starts_At", "Category",
                                          "Organiser_", "Organise_1"]


@pytest.mark.parametrize("epsg", [3857, 2154])
def test_reprojection(tmp_path, epsg):
    data, _ = write("shp", awkward_table(), {"epsg": epsg})
    _, crs, features = layers(data, tmp_path)["export_point"]
    assert crs.to_epsg() == epsg
    x, y = features[0].geometry.coordinates
    back = fiona.transform.transform(f"EPSG:{epsg}", "EPSG:4326", [x], [y])
    assert (back[0][0], back[1][0]) == pytest.approx((2.3522, 48.8566), abs=1e-5)
    assert abs(x) > 1000  # metres, not degrees


def test_empty_and_null_tables(tmp_path):
    data, _ = write("shp", empty_table())
    (schema, _, features), = layers(data, tmp_path).values()
    assert features == [] and len(schema["properties"]) == 9
    data, _ = write("shp", null_table())
    (_, _, features), = layers(data, tmp_path).values()
    assert len(features) == 2
    assert all(f.geometry is None and set(f.properties.values()) == {None} for f in features)


def test_cut_text_respects_character_boundaries():
    cut, count = cut_text(pa.array(["é" * 200, "short", None]))
    assert count == 1 and cut.to_pylist() == ["é" * 127, "short", None]


def test_refuses_a_dataset_without_geometry():
    with pytest.raises(FormatNotApplicable):
        REGISTRY.get("shp").check([Field("title", "text"), Field("day", "date")])
    assert REGISTRY.get("shp").fits(fields_of(awkward_table().schema))


def test_temporary_files_removed_on_error_and_when_dropped(tmp_path, monkeypatch):
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(Exception):
        fail_halfway("shp", awkward_table())
    assert list(tmp_path.iterdir()) == []
    table = awkward_table()
    fmt = REGISTRY.get("shp")
    writer = fmt.open(io.BytesIO(), table.schema, fields_of(table.schema), fmt.parse_options({}))
    writer.write(table.to_batches()[0])
    assert list(tmp_path.iterdir())
    del writer
    gc.collect()
    assert list(tmp_path.iterdir()) == []


def test_dbf_fields_are_as_wide_as_their_widest_value(tmp_path):
    """Text and whole numbers as wide as their widest value (as GDAL's RESIZE leaves them),
    trailing spaces being DBF padding; doubles 24.15 as GDAL declares them."""
    data, _ = write("shp", awkward_table().drop_columns(["geo_shape"]))
    (schema, _, features), = layers(data, tmp_path).values()
    assert dict(schema["properties"]) == {
        "title": "str:252", "attendance": "int:13", "price": "float:24.15", "free": "bool", "day": "date",
        "starts_at": "str:25", "category": "str:5", "organiser_": "str:14", "organise_1": "str:1"}
    assert [f.properties["attendance"] for f in features] == [1200, -5, 0, None, 2**40, 7]


RING = [(0.0, 0.0), (4.0, 0.0), (4.0, 4.0), (0.0, 4.0), (0.0, 0.0)]
HOLED = shapely.Polygon(RING, [[(1.0, 1.0), (2.0, 1.0), (2.0, 2.0), (1.0, 1.0)]])
Z_POLYGON = shapely.Polygon([(x, y, 7.0) for x, y in RING])


def flavours() -> list[tuple[bytes | None, str | None]]:
    """(stored WKB, the layer its record goes to) in every flavour a geo_shape column can hold;
    a collection goes nowhere."""
    one_point = shapely.MultiPoint([(5.0, 6.0)])
    return [
        (shapely.to_wkb(HOLED), "polygon"),
        (shapely.to_wkb(HOLED, byte_order=0), "polygon"),  # big-endian
        (shapely.to_wkb(shapely.set_srid(HOLED, 4326), include_srid=True), "polygon"),  # EWKB with an SRID
        (shapely.to_wkb(Z_POLYGON, flavor="iso"), "polygon"),  # ISO Z (1003)
        (shapely.to_wkb(Z_POLYGON), "polygon"),  # EWKB Z flag
        (shapely.to_wkb(shapely.MultiPolygon([HOLED, shapely.box(10, 10, 11, 11)])), "polygon"),
        (shapely.to_wkb(one_point), "point"),  # one-part multipoints become points
        (shapely.to_wkb(one_point, byte_order=0), "point"),
        (shapely.to_wkb(shapely.MultiPoint([(5.0, 6.0), (7.0, 8.0)])), "multipoint"),
        (shapely.to_wkb(shapely.LineString([(0.0, 0.0), (1.0, 2.0)])), "line"),
        (shapely.to_wkb(shapely.MultiLineString([[(0, 0), (1, 1)], [(2, 2), (3, 3)]])), "line"),
        (None, "point"),
        (shapely.to_wkb(shapely.GeometryCollection([shapely.Point(1, 1)])), None),
        (shapely.to_wkb(shapely.Point(3.0, 4.0)), "point"),
    ]


@pytest.mark.parametrize("binary", [pa.binary(), pa.large_binary()])
@pytest.mark.parametrize("epsg", [4326, 3857])
def test_every_wkb_flavour_goes_to_its_layer_as_shapely_reads_it(tmp_path, epsg, binary):
    """Stored WKB the numpy walk vouches for goes to GDAL as it is; shapely reads the rest (and
    every value when reprojecting): either way each record comes back in its kind's layer, in
    order, with the geometry shapely reads from the stored value (in 2D: the layers are)."""
    values, kinds = zip(*flavours())
    table = pa.table({"n": pa.array(range(len(values)), pa.int64()), "geo_shape": pa.array(values, binary)})
    data, writer = write("shp", table, {"epsg": epsg}, batch_size=5)
    assert zipfile.ZipFile(io.BytesIO(data)).testzip() is None  # every entry's CRC-32 right
    assert writer.skipped == 1
    assert writer.warnings == ["1 geometry collection(s) skipped: a shapefile cannot hold them"]
    found = layers(data, tmp_path)
    assert sorted(found) == [f"export_{k}" for k in ("line", "multipoint", "point", "polygon")]
    for kind in ("point", "multipoint", "line", "polygon"):
        _, crs, features = found[f"export_{kind}"]
        assert crs.to_epsg() == epsg
        rows = [i for i, k in enumerate(kinds) if k == kind]
        assert [f.properties["n"] for f in features] == rows
        for feature, row in zip(features, rows):
            if values[row] is None:
                assert feature.geometry is None
                continue
            want = shapely.force_2d(shapely.from_wkb(values[row]))
            if epsg != 4326:
                want = shapely.transform(want, lambda xy: np.column_stack(
                    fiona.transform.transform("EPSG:4326", f"EPSG:{epsg}", xy[:, 0].tolist(), xy[:, 1].tolist())))
            got = shapely.geometry.shape(feature.geometry)
            assert got.geom_type.removeprefix("Multi") == want.geom_type.removeprefix("Multi")
            assert shapely.get_num_interior_rings(shapely.get_geometry(got, 0)) == \
                shapely.get_num_interior_rings(shapely.get_geometry(want, 0))
            assert shapely.hausdorff_distance(got, want) < 1e-6 * (1 if epsg == 4326 else 1e6)


def test_walk_tells_type_and_count_of_the_values_it_vouches_for():
    from formats.wkb import LINESTRING, MULTIPOINT, MULTIPOLYGON, POINT, POLYGON, walk
    values = [shapely.to_wkb(shapely.Point(1, 2)), None, shapely.to_wkb(HOLED), shapely.to_wkb(HOLED, byte_order=0),
              shapely.to_wkb(shapely.MultiPoint([(5, 6)])), shapely.to_wkb(shapely.LineString([(0, 0), (1, 1), (2, 0)])),
              shapely.to_wkb(Z_POLYGON), shapely.to_wkb(shapely.MultiPolygon([HOLED, HOLED])), b"junk"]
    column = pa.array([b"padding", *values], pa.binary()).slice(1)
    walked = walk(column)
    assert walked.vouched.tolist() == [True, False, True, False, True, True, False, True, False]
    assert walked.types.tolist() == [POINT, 0, POLYGON, 0, MULTIPOINT, LINESTRING, 0, MULTIPOLYGON, 0]
    assert walked.counts.tolist() == [0, 0, 2, 0, 1, 3, 0, 2, 0]


@pytest.mark.parametrize("table", [awkward_table(), empty_table()], ids=["awkward", "empty"])
def test_each_dbf_ends_with_one_end_of_file_byte(table):
    """The record count and lengths in the header match the file, which ends with 0x1A."""
    archive = zipfile.ZipFile(io.BytesIO(write("shp", table)[0]))
    dbfs = [n for n in archive.namelist() if n.endswith(".dbf")]
    assert dbfs
    for name in dbfs:
        dbf = archive.read(name)
        count, header_length, record_length = struct.unpack("<IHH", dbf[4:12])
        assert len(dbf) == header_length + count * record_length + 1 and dbf[-1:] == b"\x1a"
