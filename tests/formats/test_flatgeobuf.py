"""FlatGeobuf as written by formats/flatgeobuf.py, read back by GDAL (fiona, pyogrio): every
geometry type and their mixes, holes and parts in odd and even numbers (the vectors' padding),
collections within collections, values of every type, the spatial index (GDAL's bbox reads
go through it) and the Hilbert curve against its definition."""
from __future__ import annotations

import fiona
import numpy as np
import pyarrow as pa
import pyogrio.raw
import pytest
import shapely

from domain.fields import Field, with_fields
from formats import packed_rtree
from tests.formats.samples import write


def shape_table(geoms: list, seed: int = 0) -> pa.Table:
    """Records with an int id, a text and a double, and `geoms` (None: no geometry) as geo_shape."""
    rng = np.random.default_rng(seed)
    n = len(geoms)
    table = pa.table({
        "id": pa.array(np.arange(n), pa.int64()),
        "label": pa.array([None if i % 7 == 3 else f"é{i}" * (i % 5) for i in range(n)], pa.string()),
        "value": pa.array(rng.normal(size=n), pa.float64()),
        "geo_shape": pa.array([None if g is None else shapely.to_wkb(g) for g in geoms], pa.binary()),
    })
    fields = [Field("id", "int"), Field("label", "text"), Field("value", "double"), Field("geo_shape", "geo_shape")]
    return table.replace_schema_metadata(with_fields(table.schema, fields).metadata)


def ring(rng, cx, cy, r, points):
    angles = np.sort(rng.uniform(0, 2 * np.pi, points))
    coords = np.column_stack([cx + r * np.cos(angles), cy + r * np.sin(angles)])
    return np.vstack([coords, coords[:1]])


def polygon(rng, cx, cy, holes=0):
    shell = ring(rng, cx, cy, 1.0, int(rng.integers(3, 9)))
    inner = [ring(rng, cx, cy, 0.05 + 0.1 * h, 3 + h) for h in range(holes)]
    return shapely.Polygon(shell, inner)


def every_kind(rng, n: int) -> list:
    """n geometries cycling through every type, with varied numbers of rings and parts."""
    out = []
    for i in range(n):
        cx, cy = rng.uniform(-170, 170), rng.uniform(-80, 80)
        kind, k = i % 8, i // 8  # k varies the numbers of points, rings and parts within a type
        if kind == 0:  # every other one 3D: written 2D, as the layer declares no z
            out.append(shapely.Point(cx, cy, 5.0) if k % 2 else shapely.Point(cx, cy))
        elif kind == 1:
            out.append(shapely.LineString(rng.uniform(-1, 1, (2 + k % 4, 2)) + (cx, cy)))
        elif kind == 2:
            out.append(polygon(rng, cx, cy, holes=k % 4))
        elif kind == 3:
            out.append(shapely.MultiPoint(rng.uniform(-1, 1, (1 + k % 4, 2)) + (cx, cy)))
        elif kind == 4:
            out.append(shapely.MultiLineString([rng.uniform(-1, 1, (2, 2)) + (cx, cy) for _ in range(1 + k % 3)]))
        elif kind == 5:
            out.append(shapely.MultiPolygon([polygon(rng, cx + 3 * p, cy, holes=p % 2) for p in range(1 + k % 4)]))
        elif kind == 6:
            out.append(shapely.GeometryCollection([shapely.Point(cx, cy), polygon(rng, cx, cy, holes=1),
                                                   shapely.MultiLineString([[(cx, cy), (cx + 1, cy + 1)]] * (1 + k % 2))]))
        else:
            out.append((None, shapely.Polygon(), shapely.Point())[k % 3])  # no geometry, an empty one, a NaN point
    return out


def read_back(tmp_path, data: bytes, **kwargs) -> list:
    path = tmp_path / "out.fgb"
    path.write_bytes(data)
    with fiona.open(path) as src:
        return list(src.filter(**kwargs)) if kwargs else list(src)


@pytest.mark.parametrize("spatial_index", [True, False])
def test_every_geometry_type_reads_back(tmp_path, spatial_index):
    geoms = every_kind(np.random.default_rng(1), 400)
    table = shape_table(geoms)
    data, writer = write("fgb", table, {"spatial_index": spatial_index}, batch_size=64)
    features = read_back(tmp_path, data)
    with_geometry = [i for i, g in enumerate(geoms) if g is not None and not g.is_empty]
    assert writer.skipped == (len(geoms) - len(with_geometry) if spatial_index else 0)
    assert sorted(f.properties["id"] for f in features) == (with_geometry if spatial_index else list(range(len(geoms))))
    records = table.to_pylist()
    for feature in features:
        i = feature.properties["id"]
        want = geoms[i]
        assert feature.properties["label"] == records[i]["label"]
        assert feature.properties["value"] == records[i]["value"]
        if want is None or want.is_empty:
            assert feature.geometry is None
            continue
        got = shapely.geometry.shape(feature.geometry)
        assert got.geom_type == want.geom_type
        assert shapely.equals_exact(shapely.normalize(got), shapely.normalize(shapely.force_2d(want)), tolerance=0)


@pytest.mark.parametrize("in_parts", [False, True])
def test_the_index_finds_what_a_box_holds(tmp_path, monkeypatch, in_parts):
    if in_parts:  # as a file of gigabytes is read back: boxes and features in many parts, pages let go
        from formats import flatgeobuf, permute
        monkeypatch.setattr(flatgeobuf, "RESIDENT", 0)
        monkeypatch.setattr(permute, "WINDOW", 4096)
        monkeypatch.setattr(flatgeobuf, "CHUNK", 48)
        monkeypatch.setattr(flatgeobuf, "GATHER", 7)
    rng = np.random.default_rng(2)
    geoms = [polygon(rng, *rng.uniform(-50, 50, 2)) if i % 2 else shapely.Point(rng.uniform(-50, 50, 2))
             for i in range(5000)]
    data, _ = write("fgb", shape_table(geoms), batch_size=1000)
    path = tmp_path / "out.fgb"
    path.write_bytes(data)
    assert pyogrio.read_info(path)["capabilities"]["fast_spatial_filter"]
    tree = shapely.STRtree(geoms)
    for box in ([-10, -10, 10, 10], [30, -50, 31, 50], [-49.5, -49.5, -49, -49], [100, 100, 101, 101]):
        want = sorted(tree.query(shapely.box(*box), predicate="intersects").tolist())
        _, _, _, table = pyogrio.raw.read(path, bbox=tuple(box), columns=["id"])[:4]
        got = sorted(table[0].tolist())
        assert got == want


def test_file_order_is_the_index_order(tmp_path):
    """Features follow the Hilbert curve, so a box's features are near each other in the file."""
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 100, (3000, 2))
    data, _ = write("fgb", shape_table([shapely.Point(p) for p in xy]), batch_size=500)
    features = read_back(tmp_path, data)
    ids = np.array([f.properties["id"] for f in features])
    low, span = xy.min(axis=0), np.ptp(xy, axis=0)
    cells = np.floor(65535 * (xy[ids] - low) / span)
    assert sorted(ids) == list(range(len(xy)))
    assert (np.diff(packed_rtree.hilbert(cells[:, 0], cells[:, 1]).astype(np.int64)) >= 0).all()


def hilbert_reference(x: int, y: int, order: int = 16) -> int:
    """The distance along the Hilbert curve of (x, y), from the curve's definition (Wikipedia's
    xy2d), which the fast version computes for 16-bit coordinates."""
    d = 0
    s = 1 << (order - 1)
    while s > 0:
        rx = 1 if x & s else 0
        ry = 1 if y & s else 0
        d += s * s * ((3 * rx) ^ ry)
        if ry == 0:
            if rx == 1:
                x, y = s - 1 - x, s - 1 - y
            x, y = y, x
        s >>= 1
    return d


def test_hilbert_values_follow_the_curve():
    rng = np.random.default_rng(4)
    x, y = rng.integers(0, 65536, 300), rng.integers(0, 65536, 300)
    got = packed_rtree.hilbert(x, y)
    assert [int(v) for v in got] == [hilbert_reference(int(a), int(b)) for a, b in zip(x, y)]
    assert packed_rtree.hilbert(np.array([0]), np.array([0]))[0] == 0


def test_tree_levels_and_offsets():
    boxes = np.column_stack([np.arange(40), -np.arange(40), np.arange(40), np.zeros(40)])
    assert packed_rtree.level_sizes(40) == [40, 3, 1] and packed_rtree.level_sizes(1) == [1, 1]
    nodes = packed_rtree.tree(boxes, np.arange(40) * 100)
    assert len(nodes) == 44
    root, level = nodes[0], nodes[1:4]
    assert (root["min_x"], root["max_x"], root["min_y"], root["offset"]) == (0, 39, -39, 1)
    assert level["offset"].tolist() == [4, 20, 36]  # each node's first child, by node number
    assert level["max_x"].tolist() == [15, 31, 39] and level["min_y"].tolist() == [-15, -31, -39]
    assert nodes[4:]["offset"].tolist() == (np.arange(40) * 100).tolist() and nodes[4:]["min_y"].tolist() == (-np.arange(40)).tolist()
    assert packed_rtree.tree(boxes[:1], np.zeros(1))["offset"].tolist() == [1, 0]  # a root above a single leaf


def spill_threads() -> list:
    import threading
    return [t for t in threading.enumerate() if t.name.startswith("fgb-spill")]


def test_a_failed_spill_fails_the_writer_and_leaves_nothing(tmp_path, monkeypatch):
    import tempfile

    from formats.flatgeobuf import Spill
    from tests.formats.samples import open_writer

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    def no_room(self, pieces, length):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(Spill, "_append", no_room)
    table = shape_table(every_kind(np.random.default_rng(5), 40))
    writer, _ = open_writer("fgb", table)
    batches = table.to_batches(max_chunksize=10)
    writer.write(batches[0])  # handed to the spill thread, which fails
    with pytest.raises(OSError, match="No space left"):
        writer.write(batches[1])
    assert list(tmp_path.iterdir()) == [] and spill_threads() == []
    writer, _ = open_writer("fgb", table)
    writer.write(batches[0])
    with pytest.raises(OSError, match="No space left"):
        writer.close()
    assert list(tmp_path.iterdir()) == [] and spill_threads() == []


def test_a_dropped_writer_stops_its_thread(tmp_path, monkeypatch):
    import gc
    import tempfile

    from tests.formats.samples import open_writer

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    table = shape_table(every_kind(np.random.default_rng(6), 20))
    writer, _ = open_writer("fgb", table)
    writer.write(table.to_batches()[0])
    assert len(spill_threads()) == 1
    del writer
    gc.collect()
    assert spill_threads() == [] and list(tmp_path.iterdir()) == []


def test_values_without_a_geometry_have_no_block():
    from formats.fgb_geometry import POINT, wkb_blocks

    square = shapely.box(0, 0, 1, 1)
    column = pa.array([shapely.to_wkb(g) if g is not None else None for g in
                       [shapely.Point(1, 2), None, square, shapely.Point(3, 4, 5), shapely.Point()]], pa.binary())
    blocks, bounds, present = wkb_blocks(column)
    assert present.tolist() == [True, False, True, True, False]
    assert blocks.sizes.tolist() == [POINT.itemsize, 40 + 16 * 5, POINT.itemsize]  # the 3D point through shapely
    assert bounds[2].tolist() == [0, 0, 1, 1] and np.isnan(bounds[4]).all()
    blocks, _, present = wkb_blocks(pa.array([shapely.to_wkb(g) for g in [square, shapely.Point(1, 2), shapely.Point()]]))
    assert present.tolist() == [True, True, False] and blocks.sizes.tolist() == [40 + 16 * 5, POINT.itemsize]
    assert np.frombuffer(blocks.joined()[1].as_py()[-16:], "<f8").tolist() == [1, 2]
