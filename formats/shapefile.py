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
- Each file is written into a temporary directory a batch at a time. The .shp and .shx are
  written here with numpy (formats/shapes.py): GDAL's driver held every record's offset and
  size until it closed the file. The DBF streams through GDAL's Arrow writer as a table
  without geometry (formats/ogr.py, on a thread of its own, without the GIL), meanwhile;
  with no attribute it gets GDAL's FID column (the record's index) as a shapefile of GDAL's
  does. The .prj is GDAL's ESRI WKT for the `epsg` option. Stored WKB is read from its bytes
  wherever formats/wkb.py's numpy walk vouches for it (kinds read from its type), and only
  the rest is parsed with shapely. GDAL writes the DBF without its end-of-file byte
  (DBF_EOF_CHAR=NO): with it, every record rewrote the byte and seeked back over it, three
  system calls a record and two thirds of GDAL's time; the copy into the zip puts it back.
- Close zips the files into `out` with ISA-L's deflate (formats/zipstream.py), six times
  faster than zlib's level 1 for 8% more bytes, two files at a time (ISA-L lets go of the
  GIL): the .shp beside the DBF's narrowing copy.
"""
from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, closing
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from formats.base import WGS84, Format
from formats.dbf import copy_narrowed
from formats.gdal import (COPY_CHUNK, ArrowFeed, GdalWriter, attribute, attribute_type, check_epsg, geometry_index,
                          launder, point_xy, reproject, wkb)
from formats.ogr import esri_wkt
from formats.shapes import ShapeFile
from formats.wkb import MULTIPOINT, walk
from formats.zipstream import DeflatedSpool, Entry, ZipWriter

MAX_NAME = 10
MAX_TEXT = 254  # bytes in a DBF character field
# ISA-L deflate level (0-3); on a 100,000-polygon .shp: 0 211 ms, 28.3 MB; 1 259 ms, 23.1 MB; 2 256 ms,
# 22.4 MB; 3 344 ms, 22.4 MB (zlib's level 1, which this used: 1,496 ms, 20.4 MB)
ZIP_LEVEL = 2
ZIP_THREADS = 2  # files deflated at once
PARTS = (".shp", ".shx", ".dbf", ".prj", ".cpg")
DBF_END = b"\x1a"  # the byte after a DBF's last record
KIND_ORDER = ("point", "multipoint", "line", "polygon")
# kind by shapely type id: Point, LineString, LinearRing, Polygon, MultiPoint, MultiLineString,
# MultiPolygon; collections go nowhere
KIND_OF_TYPE = np.array(["point", "line", "line", "polygon", "multipoint", "line", "polygon", ""], dtype=object)
# kind by WKB type (formats/wkb.py's walk: 0 where it did not vouch for the value, as for nulls,
# which go into the point file)
KIND_OF_WKB = np.array(["point", "point", "line", "polygon", "multipoint", "line", "polygon"], dtype=object)


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


class _Shapefile:
    """One shapefile being written: its DBF by GDAL (on the feed's thread), its .shp and .shx
    here."""

    def __init__(self, dbf: ArrowFeed, shapes: ShapeFile):
        self.dbf, self.shapes = dbf, shapes

    def write(self, columns: list[pa.Array], geometry: pa.BinaryArray | tuple[np.ndarray, np.ndarray]) -> None:
        """Records of the attribute `columns` (none: the FID column is made here) and
        `geometry`: WKB, or the (x, y) of points."""
        n = len(geometry[0]) if isinstance(geometry, tuple) else len(geometry)
        if not columns:
            columns = [pa.array(np.arange(self.shapes.records, self.shapes.records + n))]
        self.dbf.write(pa.record_batch(columns, schema=self.dbf.schema))
        if isinstance(geometry, tuple):
            self.shapes.write_points(*geometry)
        else:
            self.shapes.write_wkb(geometry)


class ShapefileWriter(GdalWriter):
    def __init__(self, out, schema, fields, options):
        super().__init__(out, schema, fields, options)
        self.crs = check_epsg(options["epsg"])
        self.stem = options.get("stem") or "export"
        self.geo = geometry_index(self.fields)
        self.attributes = [i for i, f in enumerate(self.fields) if f.type not in ("geo_shape", "geo_point_2d")]
        names = self.column_names()
        self.names = launder([names[i] for i in self.attributes], MAX_NAME)
        self.dbf_schema = pa.schema(
            [pa.field(n, attribute_type(self.fields[i].type)) for n, i in zip(self.names, self.attributes)]
            or [pa.field("FID", pa.int64())]
        )
        self.layers: dict[str, _Shapefile] = {}
        self.cut = dict.fromkeys(self.names, 0)
        self.collections = 0
        self.prj: str | None = None

    def _layer(self, kind: str) -> _Shapefile:
        if kind not in self.layers:
            path = self.tmp / f"{self.stem}_{kind}.shp"
            dbf = self.feed(path.with_suffix(".dbf").name, self.dbf_schema, driver="ESRI Shapefile", geometry_type="None",
                            layer_options={"ENCODING": "UTF-8", "DBF_EOF_CHAR": "NO"})
            self.prj = self.prj or esri_wkt(self.crs)
            path.with_suffix(".prj").write_text(self.prj)
            self.layers[kind] = _Shapefile(dbf, ShapeFile(path, kind))
        return self.layers[kind]

    def _columns(self, batch: pa.RecordBatch) -> list[pa.Array]:
        columns = []
        for name, i in zip(self.names, self.attributes):
            column = attribute(batch.column(i), self.fields[i].type, self.options["timezone"])
            if pa.types.is_string(column.type):
                column, count = cut_text(column)
                self.cut[name] += count
            columns.append(column)
        return columns

    def _write(self, batch: pa.RecordBatch) -> None:
        if self.fields[self.geo].type == "geo_point_2d":  # points and nulls: all for the point file
            self._layer("point").write(self._columns(batch), point_xy(batch.column(self.geo), self.options["epsg"]))
            return
        geometry, kinds = self._shapes(batch.column(self.geo).cast(pa.binary()))
        self.collections += int(np.sum(kinds == ""))
        self.skipped += int(np.sum(kinds == ""))
        columns = self._columns(batch)
        for kind in KIND_ORDER:
            rows = kinds == kind
            if rows.all():
                self._layer(kind).write(columns, geometry)
            elif rows.any():
                mask = pa.array(rows)
                self._layer(kind).write([c.filter(mask) for c in columns], geometry.filter(mask))

    def _shapes(self, column: pa.BinaryArray) -> tuple[pa.BinaryArray, np.ndarray]:
        """The WKB to write for a geo_shape column and each row's kind. A value the numpy walk
        vouches for (formats/wkb.py) goes on as it is stored, its kind read from its type;
        shapely reads (and so checks) only the others, the one-part multipoints, which become
        points, and, to move them, every value when the `epsg` option is not WGS 84."""
        walked = walk(column)
        kinds = KIND_OF_WKB[walked.types]
        redo = column.is_valid().to_numpy(zero_copy_only=False)
        if self.options["epsg"] == WGS84:
            redo &= ~walked.vouched | ((walked.types == MULTIPOINT) & (walked.counts == 1))
        if not redo.any():
            return column, kinds
        mask = pa.array(redo)
        geoms = reproject(shapely.from_wkb(column.filter(mask).to_numpy(zero_copy_only=False)), self.options["epsg"])
        one_part = (shapely.get_type_id(geoms) == 4) & (shapely.get_num_geometries(geoms) == 1)
        geoms[one_part] = shapely.get_geometry(geoms[one_part], 0)
        kinds[redo] = KIND_OF_TYPE[shapely.get_type_id(geoms)]
        return pc.replace_with_mask(column, mask, wkb(geoms)), kinds

    def _finish(self) -> None:
        if not self.layers:
            self._layer("point").dbf.close()  # an empty dataset still gets a (point) shapefile
        for layer in self.layers.values():
            layer.shapes.close()
        for name, count in self.cut.items():
            if count:
                self.warnings.append(f"{count} value(s) of DBF field {name!r} cut to {MAX_TEXT} bytes")
        if self.collections:
            self.warnings.append(f"{self.collections} geometry collection(s) skipped: a shapefile cannot hold them")
        single = len(self.layers) == 1
        paths = [self.tmp / f"{self.stem}_{kind}{part}" for kind in KIND_ORDER if kind in self.layers for part in PARTS]
        paths = [path for path in paths if path.exists()]
        with ExitStack() as stack, ThreadPoolExecutor(ZIP_THREADS) as pool:
            spools = [stack.enter_context(closing(DeflatedSpool(ZIP_LEVEL))) for _ in paths]
            names = [f"{self.stem}{path.suffix}" if single else path.name for path in paths]
            archive = ZipWriter(self.out)
            for entry in pool.map(_deflated, paths, spools, names):
                archive.add(entry)
            archive.close()


def _deflated(path: Path, spool: DeflatedSpool, name: str) -> Entry:
    """A file deflated into `spool` as the entry `name`; a DBF narrowed on the way and given
    the end-of-file byte GDAL was told not to write."""
    with open(path, "rb") as src:
        if path.suffix == ".dbf":
            copy_narrowed(src, spool)
            spool.write(DBF_END)
        else:
            shutil.copyfileobj(src, spool, COPY_CHUNK)
    return spool.entry(name)


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
