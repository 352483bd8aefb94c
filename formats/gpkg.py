"""GeoPackage (OGC 12-128r18), written by GDAL's GPKG driver (formats/gdal_layer.py) as the
batches come, on a thread of its own (formats/parallel.py's ArrowStreamSink): one layer named
after the dataset, its srs in gpkg_spatial_ref_sys (the `epsg` option's, WGS 84 by default),
its R-tree spatial index (rtree_NAME_geom, built once the features are in), and GeoPackage's
own types: INTEGER, REAL, BOOLEAN, DATE, DATETIME (which the standard keeps in UTC: GDAL
writes each instant so), TEXT. Geometry types may mix in a GeoPackage layer (GEOMETRY).
Records without a geometry keep a null one."""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from formats.base import Format
from formats.gdal_layer import GdalLayerWriter
from formats.parallel import ArrowStreamSink


class GeoPackageWriter(GdalLayerWriter):
    DRIVER = "GPKG"
    LAYER_OPTIONS = {"SPATIAL_INDEX": "YES", "GEOMETRY_NAME": "geom", "FID": "fid"}

    def __init__(self, out, schema, fields, options):
        super().__init__(out, schema, fields, options)
        self.sink: ArrowStreamSink | None = None  # started by the first batch, or by close

    def _target(self, tmp: Path, layer: str) -> Path:
        return tmp / "export.gpkg"

    def _start(self) -> ArrowStreamSink:
        kind = "Point" if self.fields[self.geo].type == "geo_point_2d" else "Unknown"
        sink = ArrowStreamSink(self.layer_schema, lambda reader: self.write_layer(reader, self.layer, kind))
        self.threads.append(sink)  # finished before _finish, aborted with the writer
        return sink

    def _write(self, batch: pa.RecordBatch) -> None:
        if self.sink is None:
            self.sink = self._start()
        self.sink.put(self.layer_batch(batch))

    def close(self) -> None:
        if self.sink is None:  # no record: GDAL still makes the (empty) layer
            self.sink = self._start()
        super().close()

    def _finish(self) -> None:
        self.copy_out(self.target)


FORMAT = Format(
    reprojects=True,
    name="gpkg",
    extension="gpkg",
    media_type="application/geopackage+sqlite3",
    writer=GeoPackageWriter,
    aliases=("geopackage",),
    binary=True,
    needs=frozenset({"geometry"}),
    description="OGC GeoPackage: one layer with its spatial index, typed fields and CRS.",
)
