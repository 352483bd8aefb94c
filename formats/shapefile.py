"""ESRI Shapefile: a zip of .shp/.shx/.dbf/.prj/.cpg (UTF-8), one shapefile per geometry kind.

- Geometry from geo_shape, else geo_point_2d; the geometry fields are not DBF columns.
- Kinds: point, multipoint, line (with multilines), polygon (with multipolygons). A shapefile
  holds one shape type and Point and MultiPoint are two, so multipoints with one part become
  points and the others get a file of their own. Records without geometry go into the point
  file with a null shape. Geometry collections cannot be written: skipped and counted.
- One kind: `export.shp` etc.; several: `export_point.shp`, `export_polygon.shp`, …
  (`export` unless the caller passes a `stem` in the options).
- DBF names laundered to 10 ASCII characters, unique and deterministic (organiser_,
  organise_1). Text is cut to 254 bytes at a character boundary, with a warning. Dates are
  DBF dates; datetimes are text, ISO 8601 in the `timezone` option (a DBF date would lose the
  time). Widths come from the data: GDAL writes text 80 wide (growing a field when a value
  needs it) and numbers 18 wide; the copy into the zip narrows them (formats/dbf.py), as
  GDAL's RESIZE would, 30 times faster.
- Each layer streams through pyogrio's Arrow writer into a temporary directory; close zips
  the files into `out` at deflate level 1 (2.7x faster than 6 for 10% more bytes).
"""
from __future__ import annotations

import zipfile

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from formats.base import Format
from formats.dbf import copy_narrowed
from formats.gdal import (ArrowFeed, GdalWriter, attribute, attribute_type, check_epsg, geometries, geometry_index, launder,
                          point_wkb, reproject, wkb)

MAX_NAME = 10
MAX_TEXT = 254  # bytes in a DBF character field
ZIP_LEVEL = 1
PARTS = (".shp", ".shx", ".dbf", ".prj", ".cpg")
# shapely type id -> kind: Point, LineString, LinearRing, Polygon, MultiPoint, MultiLineString, MultiPolygon
KINDS = {0: "point", 1: "line", 2: "line", 3: "polygon", 4: "multipoint", 5: "line", 6: "polygon"}
SHAPE_TYPES = {"point": "Point", "multipoint": "MultiPoint", "line": "MultiLineString", "polygon": "MultiPolygon"}
KIND_ORDER = ("point", "multipoint", "line", "polygon")
# kind by shapely type id + 1: -1 (no geometry) goes into the point file, collections nowhere
KIND_OF_TYPE = np.array(["point", *(KINDS.get(t, "") for t in range(8))], dtype=object)


def cut_text(column: pa.Array, limit: int = MAX_TEXT) -> tuple[pa.Array, int]:
    """Values longer than `limit` UTF-8 bytes cut at the last whole character; how many were."""
    too_long = pc.fill_null(pc.greater(pc.binary_length(column), limit), False)
    count = pc.sum(too_long).as_py() or 0
    if not count:
        return column, 0
    values = column.to_pylist()
    for i in np.flatnonzero(too_long.to_numpy(zero_copy_only=False)):
        values[i] = values[i].encode()[:limit].decode("utf-8", "ignore")
    return pa.array(values, pa.string()), count


class ShapefileWriter(GdalWriter):
    def __init__(self, out, schema, fields, options):
        super().__init__(out, schema, fields, options)
        self.crs = check_epsg(options["epsg"])
        self.stem = options.get("stem") or "export"
        self.geo = geometry_index(self.fields)
        self.attributes = [i for i, f in enumerate(self.fields) if f.type not in ("geo_shape", "geo_point_2d")]
        names = self.column_names()
        self.names = launder([names[i] for i in self.attributes], MAX_NAME)
        self.arrow_schema = pa.schema(
            [pa.field(n, attribute_type(self.fields[i].type, False)) for n, i in zip(self.names, self.attributes)]
            + [pa.field("geometry", pa.binary())]
        )
        self.layers: dict[str, ArrowFeed] = {}
        self.cut = dict.fromkeys(self.names, 0)
        self.collections = 0

    def _layer(self, kind: str) -> ArrowFeed:
        if kind not in self.layers:
            self.layers[kind] = self.feed(
                f"{self.stem}_{kind}.shp", self.arrow_schema, driver="ESRI Shapefile", geometry_name="geometry",
                geometry_type=SHAPE_TYPES[kind], crs=self.crs, layer_options={"ENCODING": "UTF-8"},
            )
        return self.layers[kind]

    def _columns(self, batch: pa.RecordBatch) -> list[pa.Array]:
        columns = []
        for name, i in zip(self.names, self.attributes):
            column = attribute(batch.column(i), self.fields[i].type, self.options["timezone"], False)
            if pa.types.is_string(column.type):
                column, count = cut_text(column)
                self.cut[name] += count
            columns.append(column)
        return columns

    def _write(self, batch: pa.RecordBatch) -> None:
        if self.fields[self.geo].type == "geo_point_2d":  # points and nulls: all for the point file
            geometry = point_wkb(batch.column(self.geo), self.options["epsg"])
            self._layer("point").write(pa.record_batch(self._columns(batch) + [geometry], schema=self.arrow_schema))
            return
        geoms = reproject(geometries(batch.column(self.geo), self.fields[self.geo].type), self.options["epsg"])
        one_part = (shapely.get_type_id(geoms) == 4) & (shapely.get_num_geometries(geoms) == 1)
        geoms[one_part] = shapely.get_geometry(geoms[one_part], 0)
        kinds = KIND_OF_TYPE[shapely.get_type_id(geoms) + 1]
        self.collections += int(np.sum(kinds == ""))
        self.skipped += int(np.sum(kinds == ""))
        records = pa.record_batch(self._columns(batch) + [wkb(geoms)], schema=self.arrow_schema)
        for kind in KIND_ORDER:
            rows = np.flatnonzero(kinds == kind)
            if len(rows) == len(kinds):
                self._layer(kind).write(records)
            elif len(rows):
                self._layer(kind).write(records.take(pa.array(rows)))

    def _finish(self) -> None:
        if not self.layers:
            self._layer("point").close()  # an empty dataset still gets a (point) shapefile
        for name, count in self.cut.items():
            if count:
                self.warnings.append(f"{count} value(s) of DBF field {name!r} cut to {MAX_TEXT} bytes")
        if self.collections:
            self.warnings.append(f"{self.collections} geometry collection(s) skipped: a shapefile cannot hold them")
        single = len(self.layers) == 1
        with zipfile.ZipFile(self.out, "w", zipfile.ZIP_DEFLATED, compresslevel=ZIP_LEVEL) as zf:
            for kind in KIND_ORDER:
                if kind not in self.layers:
                    continue
                for part in PARTS:
                    path = self.tmp / f"{self.stem}_{kind}{part}"
                    name = f"{self.stem}{part}" if single else path.name
                    if part == ".dbf":
                        large = path.stat().st_size > zipfile.ZIP64_LIMIT
                        with open(path, "rb") as src, zf.open(name, "w", force_zip64=large) as dst:
                            copy_narrowed(src, dst)
                    elif path.exists():
                        zf.write(path, name)


FORMAT = Format(
    name="shp",
    extension="zip",
    media_type="application/zip",
    writer=ShapefileWriter,
    aliases=("shapefile",),
    binary=True,
    needs=frozenset({"geometry"}),
    description="ESRI Shapefile, zipped: one .shp/.shx/.dbf/.prj/.cpg set per geometry type.",
)
