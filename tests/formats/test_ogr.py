"""formats/ogr.py: GDAL's Arrow writer through ctypes, read back with fiona."""
from __future__ import annotations

import fiona
import pyarrow as pa
import pytest
import shapely

from formats.ogr import Layer, OgrError

SCHEMA = pa.schema([("name", pa.string()), ("count", pa.int64()), ("geometry", pa.binary())])


def batch(names: list[str | None], counts: list[int | None], shapes: list) -> pa.RecordBatch:
    wkb = [None if s is None else shapely.to_wkb(s) for s in shapes]
    return pa.record_batch([pa.array(names, pa.string()), pa.array(counts, pa.int64()), pa.array(wkb, pa.binary())],
                           schema=SCHEMA)


@pytest.mark.parametrize("driver, suffix, options", [("FlatGeobuf", "fgb", {}), ("ESRI Shapefile", "shp", {"ENCODING": "UTF-8"}),
                                                     ("GPKG", "gpkg", {})])
def test_batches_written_read_back_by_fiona(tmp_path, driver, suffix, options) -> None:
    polygon = shapely.Polygon([(2, 48), (3, 48), (3, 49), (2, 48)])
    layer = Layer(tmp_path / f"out.{suffix}", SCHEMA, driver=driver, geometry_type="Polygon", crs="EPSG:4326",
                  layer_options=options)
    layer.write(batch(["Fête", None], [1, None], [polygon, polygon]))
    layer.write(batch(["東京"], [2**40], [shapely.Polygon([(0, 0), (1, 0), (1, 1), (0, 0)])]))
    layer.close()
    layer.close()  # once only: a second close does nothing
    with fiona.open(tmp_path / f"out.{suffix}") as src:
        assert src.crs.to_epsg() == 4326
        records = [(f["properties"]["name"], f["properties"]["count"], shapely.geometry.shape(f["geometry"])) for f in src]
    assert [(name, count) for name, count, _ in records] == [("Fête", 1), (None, None), ("東京", 2**40)]
    assert records[0][2].equals(polygon) and records[2][2].bounds == (0, 0, 1, 1)


def test_what_gdal_refuses_is_an_ogr_error_with_gdals_reason(tmp_path) -> None:
    with pytest.raises(OgrError, match="no driver"):
        Layer(tmp_path / "out.x", SCHEMA, driver="No Such Driver")
    with pytest.raises(OgrError, match="could not create"):
        Layer(tmp_path / "missing" / "dir" / "out.fgb", SCHEMA, driver="FlatGeobuf")
    with pytest.raises(OgrError, match="CRS"):
        Layer(tmp_path / "out.fgb", SCHEMA, driver="FlatGeobuf", crs="EPSG:999999")
