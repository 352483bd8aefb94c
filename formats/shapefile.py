"""ESRI Shapefile: a zip of .shp/.shx/.dbf/.prj/.cpg (UTF-8), one shapefile per geometry kind.

- Geometry from geo_shape, else geo_point_2d; the geometry fields are not DBF columns.
- Kinds: point, multipoint, line (with multilines), polygon (with multipolygons). A shapefile
  holds one shape type and Point and MultiPoint are two, so multipoints with one part become
  points and the others get a file of their own. Records without geometry go into the point
  file with a null shape. Geometry collections cannot be written: skipped and counted.
- One kind: `NAME.shp` etc.; several: `NAME_point.shp`, `NAME_polygon.shp`, …, NAME the
  dataset's (the `stem` Format.open passes; `export` without one), safe as a file name.
- DBF names laundered to 10 ASCII characters, unique and deterministic (organiser_,
  organise_1). Text is cut to 254 bytes at a character boundary, with a warning. Dates are
  DBF dates; datetimes are text, ISO 8601 in the `timezone` option (a DBF date would lose the
  time). Every text and whole-number field is as wide as its widest value, as GDAL's RESIZE
  leaves them. With no attribute, the DBF gets GDAL's FID column (the record's index).
- Written here, not by GDAL, file by file as GDAL's driver wrote them (byte for byte on the
  bench data; the departures are in formats/dbf.py): the .shp and .shx with numpy
  (formats/shapes.py; GDAL held every record's offset and size until it closed the file, 447
  MiB at 10 million points), the DBF with pyarrow.compute (formats/dbf.py; GDAL wrote 10 µs
  a record). The .prj is GDAL's ESRI WKT for the `epsg` option; in WGS 84, the default, it is
  known, and GDAL is not loaded at all. Stored WKB is read from its bytes wherever
  formats/wkb.py's numpy walk vouches for it (kinds read from its type), and only the rest is
  parsed with shapely.
- Each file is written into a temporary directory a batch at a time; close zips them into
  `out` with ISA-L's deflate (formats/zipstream.py), six times faster than zlib's level 1 for
  8% more bytes, two files at a time (ISA-L lets go of the GIL).
"""
from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, closing
from functools import partial
from pathlib import Path
from typing import BinaryIO, Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from formats import dbf
from formats.base import WGS84, Format
from formats.dbf import MAX_TEXT, DbfWriter
from formats.names import file_stem
from formats.geo import (COPY_CHUNK, ScratchWriter, attribute, attribute_type, check_epsg, esri_wkt, geometry_index,
                         launder, point_xy, reproject, wkb)
from formats.shapes import ShapeFile
from formats.wkb import MULTIPOINT, walk
from formats.zipstream import DeflatedSpool, ZipWriter

MAX_NAME = 10
# ISA-L deflate level (0-3); on a 100,000-polygon .shp: 0 211 ms, 28.3 MB; 1 259 ms, 23.1 MB; 2 256 ms,
# 22.4 MB; 3 344 ms, 22.4 MB (zlib's level 1, which this used: 1,496 ms, 20.4 MB)
ZIP_LEVEL = 2
ZIP_THREADS = 2  # files deflated at once
DBF_PARTS = 2  # parts of a DBF deflated side by side (the largest file: 220 bytes a record on the bench)
PARTS = (".shp", ".shx", ".dbf", ".prj", ".cpg")
WGS84_PRJ = ('GEOGCS["GCS_WGS_1984",DATUM["D_WGS_1984",SPHEROID["WGS_1984",6378137.0,298.257223563]],'
             'PRIMEM["Greenwich",0.0],UNIT["Degree",0.0174532925199433]]')  # GDAL's .prj for EPSG:4326
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
    """One shapefile being written: its .shp and .shx, and its DBF."""

    def __init__(self, path: Path, kind: str, fields: list[dbf.Field]):
        self.shapes = ShapeFile(path, kind)
        self.table = DbfWriter(path.with_suffix(".dbf-blocks"), fields)

    def write(self, columns: list[pa.Array], geometry: pa.BinaryArray | tuple[np.ndarray, np.ndarray]) -> None:
        """Records of the attribute `columns` (none: the FID column is made here) and
        `geometry`: WKB, or the (x, y) of points."""
        n = len(geometry[0]) if isinstance(geometry, tuple) else len(geometry)
        if not columns:
            columns = [pa.array(np.arange(self.shapes.records, self.shapes.records + n))]
        self.table.write(columns)
        if isinstance(geometry, tuple):
            self.shapes.write_points(*geometry)
        else:
            self.shapes.write_wkb(geometry)


class ShapefileWriter(ScratchWriter):
    def __init__(self, out, schema, fields, options):
        super().__init__(out, schema, fields, options)
        check_epsg(options["epsg"])
        self.stem = file_stem(options.get("stem"))
        self.geo = geometry_index(self.fields)
        self.attributes = [i for i, f in enumerate(self.fields) if f.type not in ("geo_shape", "geo_point_2d")]
        names = self.column_names()
        self.names = launder([names[i] for i in self.attributes], MAX_NAME)
        self.dbf_fields = [dbf.field_of(n, attribute_type(self.fields[i].type)) for n, i in zip(self.names, self.attributes)]
        self.dbf_fields = self.dbf_fields or [dbf.field_of("FID", pa.int64())]
        self.layers: dict[str, _Shapefile] = {}
        self.cut = dict.fromkeys(self.names, 0)
        self.collections = 0

    def _layer(self, kind: str) -> _Shapefile:
        if kind not in self.layers:
            self.layers[kind] = _Shapefile(self.tmp / f"{self.stem}_{kind}.shp", kind, self.dbf_fields)
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
            self._layer("point")  # an empty dataset still gets a (point) shapefile
        for layer in self.layers.values():
            layer.shapes.close()
        for name, count in self.cut.items():
            if count:
                self.warnings.append(f"{count} value(s) of DBF field {name!r} cut to {MAX_TEXT} bytes")
        if self.collections:
            self.warnings.append(f"{self.collections} geometry collection(s) skipped: a shapefile cannot hold them")
        single = len(self.layers) == 1
        epsg = self.options["epsg"]
        texts = {".prj": (WGS84_PRJ if epsg == WGS84 else esri_wkt(epsg)).encode(), ".cpg": b"UTF-8"}
        jobs: list[Callable[[BinaryIO], None]] = []  # each writes a spool, on the pool's threads
        entries: list[tuple[str, bytes, int, int]] = []  # (name, head, its spools: first, end)
        for kind, layer in sorted(self.layers.items(), key=lambda item: KIND_ORDER.index(item[0])):
            name = self.stem if single else f"{self.stem}_{kind}"
            for part in PARTS:
                head = b""
                if part == ".dbf":  # its records in runs, deflated side by side
                    head, groups = layer.table.head(), layer.table.groups(DBF_PARTS)
                    writes = [partial(layer.table.copy_records, group, last=i == len(groups) - 1)
                              for i, group in enumerate(groups)]
                elif part in texts:
                    writes = [partial(_put, texts[part])]
                else:
                    writes = [partial(_copy, self.tmp / f"{self.stem}_{kind}{part}")]
                entries.append((name + part, head, len(jobs), len(jobs) + len(writes)))
                jobs += writes
        with ExitStack() as stack, ThreadPoolExecutor(ZIP_THREADS) as pool:
            spools = [stack.enter_context(closing(DeflatedSpool(ZIP_LEVEL))) for _ in jobs]
            list(pool.map(lambda job, spool: job(spool), jobs, spools))  # all written (or the first error raised)
            archive = ZipWriter(self.out)
            for name, head, first, end in entries:
                archive.add(spools[end - 1].entry(name, head, [spool.part() for spool in spools[first:end - 1]]))
            archive.close()


def _put(data: bytes, dst: BinaryIO) -> None:
    dst.write(data)


def _copy(path: Path, dst: BinaryIO) -> None:
    with open(path, "rb") as src:
        shutil.copyfileobj(src, dst, COPY_CHUNK)


FORMAT = Format(
    reprojects=True,
    name="shp",
    extension="zip",
    media_type="application/zip",
    writer=ShapefileWriter,
    aliases=("shapefile",),
    binary=True,
    needs=frozenset({"geometry"}),
    description="ESRI Shapefile, zipped: one .shp/.shx/.dbf/.prj/.cpg set per geometry type.",
)
