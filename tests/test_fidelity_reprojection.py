"""Every format that takes `epsg`, read back with GDAL (pyogrio): coordinates within 1 m of
PROJ's own transform (pyproj, apart from the GDAL the writers use), the CRS written where
the format holds one, and records without a geometry kept as null geometries, never as
infinities or 0,0."""
from __future__ import annotations

import io
import math
import zipfile

import numpy as np
import pyarrow as pa
import pyproj
import pytest
import shapely

from domain.fields import GEO_POINT
from tests.readback import export, gdal_layers, geo_table

EPSG = 2154  # Lambert-93, metres

SHAPES = [
    shapely.Point(2.3522, 48.8566),
    None,
    shapely.Polygon([(2.0, 48.0), (3.0, 48.0), (3.0, 49.0), (2.0, 49.0)],
                    [[(2.4, 48.4), (2.6, 48.4), (2.6, 48.6), (2.4, 48.6)]]),  # with a hole
    shapely.MultiPolygon([shapely.box(4.8, 45.7, 4.9, 45.8), shapely.box(5.3, 43.2, 5.4, 43.3)]),
    shapely.LineString([(-1.55, 47.21), (-1.5, 47.25), (-1.45, 47.3)]),
    None,
    shapely.Point(7.7521, 48.5734),
]


def points_table() -> pa.Table:
    points = [None if s is None or s.geom_type != "Point" else {"lon": s.x, "lat": s.y} for s in SHAPES]
    return geo_table({"id": pa.array(range(len(points)), pa.int64()), "geo_point_2d": pa.array(points, GEO_POINT)})


def shapes_table() -> pa.Table:
    wkb = [None if s is None else shapely.to_wkb(s) for s in SHAPES]
    return geo_table({"id": pa.array(range(len(wkb)), pa.int64()), "geo_shape": pa.array(wkb, pa.binary())},
                     {"geo_shape": "geo_shape"})


def expected(table: pa.Table, epsg: int) -> dict[int, shapely.Geometry | None]:
    """Each record's geometry moved by pyproj (lon, lat order), by id."""
    move = pyproj.Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True)
    column = table.column(table.schema.names[1]).to_pylist()
    out = {}
    for i, value in enumerate(column):
        if value is None:
            out[i] = None
            continue
        geom = shapely.Point(value["lon"], value["lat"]) if isinstance(value, dict) else shapely.from_wkb(value)
        out[i] = shapely.transform(geom, lambda xy: np.column_stack(move.transform(xy[:, 0], xy[:, 1])))
    return out


def read_all(data: bytes, format_name: str, tmp_path) -> tuple[list, list[dict]]:
    layers = gdal_layers(data, format_name, tmp_path)
    return list(layers.values()), [r for layer in layers.values() for r in layer.records]


CASES = [("geojson", {}), ("shp", {}), ("fgb", {"spatial_index": False}), ("fgb", {}), ("gpkg", {}), ("fgdb", {})]


@pytest.mark.parametrize("table", [points_table, shapes_table], ids=["points", "shapes"])
@pytest.mark.parametrize("format_name,options", CASES, ids=[f"{n}{'-noindex' if o else ''}" for n, o in CASES])
def test_reprojected_coordinates_crs_and_null_geometries(tmp_path, format_name, options, table):
    table = table()
    data, writer = export(format_name, table, {"epsg": EPSG, **options})
    layers, records = read_all(data, format_name, tmp_path)
    want = expected(table, EPSG)
    for layer in layers:
        assert pyproj.CRS.from_user_input(layer.crs).to_epsg() == EPSG, layer.crs
        assert layer.bounds is not None and all(math.isfinite(b) for b in layer.bounds)
    indexed = format_name == "fgb" and not options
    kept = {i for i, g in want.items() if g is not None} if indexed else set(want)
    assert sorted(r["id"] for r in records) == sorted(kept)
    assert writer.skipped == len(want) - len(kept)
    for record in records:
        got, wanted = record["geometry"], want[record["id"]]
        if wanted is None:
            assert got is None or got.is_empty, (record, got)
            continue
        assert got is not None, record
        # a shapefile has no single polygon or line type (GDAL reads one part as the single type),
        # a FileGDB feature class holds multi-part lines and polygons
        assert got.geom_type.removeprefix("Multi") == wanted.geom_type.removeprefix("Multi")
        assert shapely.hausdorff_distance(got, wanted) < 1.0, (record["id"], got, wanted)
        # every vertex within 1 m, holes kept (Hausdorff alone would let a hole vanish)
        assert shapely.equals_exact(shapely.normalize(shapely.force_2d(got)), shapely.normalize(wanted), tolerance=1.0) \
            or got.geom_type != wanted.geom_type
    everything = shapely.total_bounds([g for g in want.values() if g is not None])
    for layer in layers:  # each layer's extent lies within that of all the geometries
        lx, ly, hx, hy = layer.bounds
        assert everything[0] - 1 <= lx <= hx <= everything[2] + 1 and everything[1] - 1 <= ly <= hy <= everything[3] + 1


def test_shapefile_prj_names_the_crs(tmp_path):
    data, _ = export("shp", points_table(), {"epsg": EPSG})
    archive = zipfile.ZipFile(io.BytesIO(data))
    prj = [n for n in archive.namelist() if n.endswith(".prj")]
    assert prj
    for name in prj:
        crs = pyproj.CRS.from_wkt(archive.read(name).decode())
        assert crs.to_epsg(min_confidence=70) == EPSG, crs


def test_shapefile_extent_is_that_of_the_points(tmp_path):
    """The bug this suite was written for: null points moved by GDAL became POINT (inf inf)
    and the header's extent 0,0–0,0."""
    layers, records = read_all(export("shp", points_table(), {"epsg": EPSG})[0], "shp", tmp_path)
    (layer,) = layers
    want = [g for g in expected(points_table(), EPSG).values() if g is not None]
    assert layer.bounds == pytest.approx(shapely.total_bounds(want), abs=1.0)
    assert sum(r["geometry"] is None for r in records) == len(SHAPES) - len(want) == 5


def test_geojson_with_another_crs_names_it_as_gdal_does():
    """RFC 7946 GeoJSON is WGS 84 only; with another `epsg` the file carries the 2008 `crs`
    member, as GDAL's GeoJSON driver writes it when not asked for RFC 7946."""
    import orjson

    document = orjson.loads(export("geojson", points_table(), {"epsg": EPSG})[0])
    assert document["crs"] == {"type": "name", "properties": {"name": f"urn:ogc:def:crs:EPSG::{EPSG}"}}
    assert "crs" not in orjson.loads(export("geojson", points_table())[0])
