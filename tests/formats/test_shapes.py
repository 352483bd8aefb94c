"""The .shp and .shx written by formats/shapes.py, read back two ways: by a decoder written
here from ESRI's Shapefile Technical Description (headers, record numbers, the index's offsets,
ring orientation), and by GDAL through fiona (geometries)."""
from __future__ import annotations

import io
import struct
import zipfile

import fiona
import numpy as np
import pyarrow as pa
import pytest
import shapely

from formats import shapes
from formats.shapes import ShapeFile
from tests.formats.samples import write

SQUARE = [(0.0, 0.0), (0.0, 4.0), (4.0, 4.0), (4.0, 0.0), (0.0, 0.0)]  # clockwise
HOLE = [(1.0, 1.0), (2.0, 1.0), (2.0, 2.0), (1.0, 1.0)]  # counter-clockwise


def decode(shp: bytes, shx: bytes) -> tuple[dict, list[tuple[int, object]]]:
    """(the .shp header, [(shape type, geometry)]): points as (x, y), multipoints as a list of
    them, polylines and polygons as (box, [part as a list of points]); the .shx checked
    against the records it indexes."""
    def header(data: bytes) -> dict:
        code, *unused, words = struct.unpack(">7i", data[:28])
        version, shape_type, *box = struct.unpack("<2i8d", data[28:100])
        assert code == 9994 and unused == [0] * 5 and version == 1000 and words * 2 == len(data)
        return {"type": shape_type, "box": box[:4]}

    head = header(shp)
    assert header(shx)["type"] == head["type"] and header(shx)["box"] == head["box"]
    records, at = [], 100
    index = np.frombuffer(shx, ">i4", offset=100).reshape(-1, 2)
    while at < len(shp):
        number, words = struct.unpack(">2i", shp[at:at + 8])
        assert number == len(records) + 1 and tuple(index[number - 1]) == (at // 2, words)
        content = shp[at + 8:at + 8 + 2 * words]
        shape_type, = struct.unpack("<i", content[:4])
        if shape_type == 0:
            assert words == 2
            records.append((0, None))
        elif shape_type == 1:
            records.append((1, struct.unpack("<2d", content[4:20])))
        elif shape_type == 8:
            n, = struct.unpack("<i", content[36:40])
            records.append((8, [tuple(p) for p in np.frombuffer(content, "<f8", 2 * n, 40).reshape(n, 2)]))
        else:
            box = struct.unpack("<4d", content[4:36])
            parts, points = struct.unpack("<2i", content[36:44])
            starts = list(struct.unpack(f"<{parts}i", content[44:44 + 4 * parts])) + [points]
            xy = np.frombuffer(content, "<f8", 2 * points, 44 + 4 * parts).reshape(points, 2)
            assert 44 + 4 * parts + 16 * points == len(content)
            records.append((shape_type, (box, [[tuple(p) for p in xy[a:b]] for a, b in zip(starts, starts[1:])])))
        at += 8 + 2 * words
    assert len(records) == len(index)
    return head, records


def write_shapes(tmp_path, kind: str, values: list, batches: int = 1) -> tuple[dict, list]:
    shapefile = ShapeFile(tmp_path / "t.shp", kind)
    column = pa.array([None if v is None else shapely.to_wkb(v) for v in values], pa.binary())
    step = -(-len(values) // batches)
    for start in range(0, len(values), step):
        shapefile.write_wkb(column.slice(start, step))
    shapefile.close()
    return decode((tmp_path / "t.shp").read_bytes(), (tmp_path / "t.shx").read_bytes())


def test_polygon_rings_are_turned_outer_clockwise_holes_counter_clockwise(tmp_path):
    clockwise = shapely.Polygon(SQUARE, [HOLE])  # as a shapefile has them
    counter = shapely.Polygon(SQUARE[::-1], [HOLE[::-1]])  # the other way round, as GeoJSON has them
    multi = shapely.MultiPolygon([counter, shapely.box(10, 10, 11, 12)])
    head, records = write_shapes(tmp_path, "polygon", [clockwise, counter, multi, None, shapely.Polygon()])
    assert head["type"] == 5 and head["box"] == [0.0, 0.0, 11.0, 12.0]
    assert [t for t, _ in records] == [5, 5, 5, 0, 0]
    for _, (box, rings) in records[:3]:
        outer = [r for r in rings if not shapely.is_ccw(shapely.LinearRing(r))]
        holes = [r for r in rings if shapely.is_ccw(shapely.LinearRing(r))]
        assert len(holes) == 1 and all(shapely.Polygon(h).within(shapely.Polygon(SQUARE)) for h in holes)
        assert len(outer) == len(rings) - 1
    assert records[2][1][0] == (0.0, 0.0, 11.0, 12.0)
    assert sorted(shapely.Polygon(r).area for r in records[2][1][1]) == [0.5, 2.0, 16.0]


def test_lines_multipoints_and_points_with_nulls(tmp_path):
    lines = [shapely.LineString([(0, 0), (1, 2), (3, 1)]), None,
             shapely.MultiLineString([[(5, 5), (6, 6)], [(7, 7), (8, 9), (9, 9)]]), shapely.LineString()]
    head, records = write_shapes(tmp_path, "line", lines)
    assert head["type"] == 3 and head["box"] == [0.0, 0.0, 9.0, 9.0]
    assert records == [(3, ((0.0, 0.0, 3.0, 2.0), [[(0, 0), (1, 2), (3, 1)]])), (0, None),
                       (3, ((5.0, 5.0, 9.0, 9.0), [[(5, 5), (6, 6)], [(7, 7), (8, 9), (9, 9)]])), (0, None)]
    head, records = write_shapes(tmp_path, "multipoint", [shapely.MultiPoint([(1, 2), (3, -4)]), None])
    assert head["type"] == 8 and records == [(8, [(1, 2), (3, -4)]), (0, None)]
    points = [shapely.Point(1, 2), None, shapely.Point(), shapely.Point(-3, 4)]
    head, records = write_shapes(tmp_path, "point", points, batches=2)
    assert head == {"type": 1, "box": [-3.0, 2.0, 1.0, 4.0]}
    assert records == [(1, (1.0, 2.0)), (0, None), (0, None), (1, (-3.0, 4.0))]


def test_an_empty_file_has_a_zero_box(tmp_path):
    head, records = write_shapes(tmp_path, "polygon", [None])
    assert head == {"type": 5, "box": [0.0, 0.0, 0.0, 0.0]} and records == [(0, None)]


def test_values_shapely_reads_and_values_read_from_their_bytes_keep_their_order(tmp_path):
    """Big-endian and 3D WKB go through shapely, the rest is read from its bytes: in one batch,
    the records still come out in row order, every geometry as it went in (in 2D)."""
    rng = np.random.default_rng(7)
    geoms = [shapely.buffer(shapely.Point(rng.uniform(-50, 50, 2)), rng.uniform(0.5, 3), quad_segs=int(rng.integers(1, 6)))
             for _ in range(60)]
    geoms[5] = shapely.MultiPolygon([geoms[5], shapely.box(60, 60, 61, 61)])
    values = [shapely.to_wkb(g, byte_order=0 if i % 3 == 0 else 1, output_dimension=3 if i % 7 == 0 else 2)
              for i, g in enumerate(shapely.force_3d(geoms, 1.0))]
    shapefile = ShapeFile(tmp_path / "t.shp", "polygon")
    shapefile.write_wkb(pa.array(values, pa.binary()))
    shapefile.close()
    _, records = decode((tmp_path / "t.shp").read_bytes(), (tmp_path / "t.shx").read_bytes())
    for (_, (_, rings)), want in zip(records, geoms, strict=True):
        got = shapely.MultiPolygon([shapely.Polygon(r) for r in rings]) if len(rings) > 1 else shapely.Polygon(rings[0])
        assert got.equals(shapely.force_2d(want))


def test_fiona_reads_every_geometry_back(tmp_path):
    """Through the writer: GDAL's reader builds the same polygons (holes by orientation)."""
    rng = np.random.default_rng(3)
    holed = [shapely.Point(x, y).buffer(2).difference(shapely.Point(x, y).buffer(1)) for x, y in rng.uniform(-80, 80, (30, 2))]
    multi = [shapely.MultiPolygon([a, shapely.box(100 + i, 0, 100.5 + i, 1)]) for i, a in enumerate(holed[:10])]
    values = holed + multi + [shapely.Polygon(SQUARE[::-1])]
    table = pa.table({"n": pa.array(range(len(values)), pa.int64()),
                      "geo_shape": pa.array([shapely.to_wkb(v) for v in values], pa.binary())})
    data, _ = write("shp", table, batch_size=16)
    path = tmp_path / "out.zip"
    path.write_bytes(data)
    with fiona.open(f"zip://{path}") as src:
        features = list(src)
    assert [f.properties["n"] for f in features] == list(range(len(values)))
    for feature, want in zip(features, values):
        got = shapely.geometry.shape(feature.geometry)
        assert got.equals(want) and shapely.get_num_interior_rings(shapely.get_geometry(got, 0)) == \
            shapely.get_num_interior_rings(shapely.get_geometry(want, 0))
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        head, _ = decode(archive.read("export.shp"), archive.read("export.shx"))
    assert head["box"] == pytest.approx(list(shapely.total_bounds(values)))


def test_geometry_only_dataset_gets_gdal_fid_column(tmp_path):
    table = pa.table({"geo_shape": pa.array([shapely.to_wkb(shapely.Point(i, i)) for i in range(5)], pa.binary())})
    data, _ = write("shp", table, batch_size=2)
    path = tmp_path / "out.zip"
    path.write_bytes(data)
    with fiona.open(f"zip://{path}") as src:
        assert dict(src.schema["properties"]) == {"FID": "int32:1"}
        assert [(f.properties["FID"], f.geometry.coordinates) for f in src] == [(i, (i, i)) for i in range(5)]


def test_a_file_past_what_a_shapefile_can_hold_fails(tmp_path, monkeypatch):
    monkeypatch.setattr(shapes, "MAX_BYTES", 200)
    shapefile = ShapeFile(tmp_path / "t.shp", "point")
    shapefile.write_points(np.arange(3.0), np.arange(3.0))
    with pytest.raises(ValueError, match="4 GiB"):
        shapefile.write_points(np.arange(2.0), np.arange(2.0))


def test_runs_read_from_bytes_agree_with_shapely_s_and_broken_values_raise():
    """Values the numpy walk reads (little-endian) and values shapely reads (big-endian, 3D,
    collections) give the runs shapely's own reading gives; a broken value raises as
    shapely.from_wkb does, so the export fails with its reason. (Empty points are not runs'
    business: the point file reads them as null shapes.)"""
    from formats.shapes import Runs
    ring = [(0, 0), (4, 0), (4, 4), (0, 0)]
    hole = [(1, 1), (2, 1), (2, 2), (1, 1)]
    geoms = [shapely.Point(1, 2), shapely.LineString([(0, 0), (1, 1)]), shapely.Polygon(ring, [hole]),
             shapely.MultiPoint([(0, 0), (1, 1)]), shapely.MultiLineString([[(0, 0), (1, 1)], [(2, 2), (3, 3)]]),
             shapely.MultiPolygon([shapely.Polygon(ring), shapely.Polygon(hole)]), shapely.Polygon(),
             shapely.GeometryCollection([shapely.Point(1, 1)]), shapely.Point(1, 2, 3), shapely.Point(1, 2).buffer(1)]
    values = [shapely.to_wkb(g) for g in geoms] + [shapely.to_wkb(g, byte_order=0) for g in geoms] + [None]
    column = pa.array(values, pa.binary())
    for part in (column, column.slice(3, 4)):
        got = Runs.of_wkb(part)
        want = Runs.of_geometries(shapely.from_wkb(part.to_numpy(zero_copy_only=False)), np.arange(len(part)))
        assert got.row.tolist() == want.row.tolist() and got.points.tolist() == want.points.tolist()
        assert got.first.tolist() == want.first.tolist() and np.array_equal(got.xy, want.xy)
    polygon = shapely.to_wkb(shapely.Polygon(ring))
    unclosed = polygon[:-16] + shapely.to_wkb(shapely.Point(9, 9))[5:]
    for broken in (b"junk", polygon[:-3], unclosed, polygon[:9] + (2**31).to_bytes(4, "little") + polygon[13:]):
        with pytest.raises(shapely.errors.GEOSException):
            Runs.of_wkb(pa.array([polygon, broken, None], pa.binary()))
