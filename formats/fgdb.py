"""Esri File Geodatabase, written by GDAL's OpenFileGDB driver (formats/gdal_layer.py) into a
NAME.gdb folder, zipped (QGIS and GDAL open the zip as it is; ArcGIS Pro once unzipped).

A feature class holds one geometry type, so, as the shapefile export does, there is one a kind:
point, multipoint, line (lines and multilines: FileGDB's polylines are multi-part) and polygon
(polygons and multipolygons), named NAME when there is one kind, else NAME_point,
NAME_polygon, …; geometry collections cannot be held: skipped and counted. Records without a
geometry keep a null one, in their place in a points dataset's one class, else at the end of
the feature class with the most records. Each kind's batches
wait in an Arrow IPC scratch file, and GDAL writes the feature classes one after the other at
close, in the `epsg` option's CRS, each with its spatial index.

FileGDB's types, as GDAL writes them for ArcGIS Pro 3.2 and later: Big Integer, Double,
Short Integer 0/1 for booleans (FileGDB has no boolean), Date Only, Date (the instant, in
UTC), Text."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import shapely

from formats.base import Format
from formats.gdal_layer import GdalLayerWriter
from formats.geo import COPY_CHUNK, launder
from formats.wkb import walk
from formats.zipstream import DeflatedSpool, ZipWriter

MAX_NAME = 64  # characters of a FileGDB field name
RESERVED = ("OBJECTID", "SHAPE", "SHAPE_Length", "SHAPE_Area")
ZIP_LEVEL = 2  # ISA-L's deflate level, as the shapefile's zip
KIND_ORDER = ("point", "multipoint", "line", "polygon")
GEOMETRY_TYPES = {"point": "Point", "multipoint": "MultiPoint", "line": "MultiLineString", "polygon": "MultiPolygon"}
# kind by shapely type id: Point, LineString, LinearRing, Polygon, MultiPoint, MultiLineString,
# MultiPolygon, GeometryCollection (none: skipped)
KIND_OF_TYPE = np.array(["point", "line", "line", "polygon", "multipoint", "line", "polygon", ""], dtype=object)
# kind by WKB type (formats/wkb.py's walk), 0 unused
KIND_OF_WKB = np.array(["", "point", "line", "polygon", "multipoint", "line", "polygon"], dtype=object)
NULL = "null"  # records without a geometry, placed at close


class FileGdbWriter(GdalLayerWriter):
    DRIVER = "OpenFileGDB"
    # 64-bit integers and dates only exist from ArcGIS Pro 3.2 on; before it GDAL wrote them
    # as doubles and datetimes
    LAYER_OPTIONS = {"TARGET_ARCGIS_VERSION": "ARCGIS_PRO_3_2_OR_LATER"}

    def __init__(self, out, schema, fields, options):
        super().__init__(out, schema, fields, options)
        self.spools: dict[str, pa.ipc.RecordBatchFileWriter] = {}
        self.rows: dict[str, int] = {}
        self.collections = 0
        # FileGDB names: ASCII letters, digits and _, from a letter (GDAL would launder them so, warning)
        self.layer = launder([self.layer])[0]
        self.layer = self.layer if self.layer[0].isalpha() else f"_{self.layer}"

    def field_names(self, names: list[str]) -> list[str]:
        """FileGDB's field names: ASCII letters, digits and _, from a letter, 64 at most,
        unique ignoring case and unlike the columns it adds (OBJECTID, SHAPE); made here, as
        GDAL would launder them (with a warning each), but the same for every export."""
        lettered = [n if n[:1].isascii() and n[:1].isalpha() else f"F_{n}" for n in names]
        return launder(lettered, MAX_NAME, reserved=RESERVED)

    def _target(self, tmp: Path, layer: str) -> Path:
        return tmp / f"{layer}.gdb"

    def _spool(self, kind: str, batch: pa.RecordBatch) -> None:
        if kind not in self.spools:
            self.spools[kind] = pa.ipc.new_file(str(self.tmp / f"{kind}.arrow"), self.layer_schema)
            self.rows[kind] = 0
        self.spools[kind].write_batch(batch)
        self.rows[kind] += batch.num_rows

    def _write(self, batch: pa.RecordBatch) -> None:
        batch = self.layer_batch(batch)
        if self.fields[self.geo].type == "geo_point_2d":  # one feature class, records without a point in their place
            self._spool("point", batch)
            return
        kinds = self._kinds(batch.column(batch.num_columns - 1))
        self.collections += int(np.sum(kinds == ""))
        for kind in (*KIND_ORDER, NULL):
            rows = kinds == kind
            if rows.all():
                self._spool(kind, batch)
            elif rows.any():
                self._spool(kind, batch.filter(pa.array(rows)))

    @staticmethod
    def _kinds(geometry: pa.BinaryArray) -> np.ndarray:
        """Each value's kind: read from its type where formats/wkb.py's walk vouches for it,
        through shapely for the others; NULL where there is none."""
        walked = walk(geometry)
        kinds = np.where(walked.vouched, KIND_OF_WKB[walked.types], NULL).astype(object)
        others = np.flatnonzero(geometry.is_valid().to_numpy(zero_copy_only=False) & ~walked.vouched)
        if len(others):
            types = shapely.get_type_id(shapely.from_wkb(geometry.take(pa.array(others)).to_numpy(zero_copy_only=False)))
            kinds[others] = np.where(types < 0, NULL, KIND_OF_TYPE[np.maximum(types, 0)])
        return kinds

    def _finish(self) -> None:
        for spool in self.spools.values():
            spool.close()
        self.skipped += self.collections
        if self.collections:
            self.warnings.append(f"{self.collections} geometry collection(s) skipped: a FileGDB feature class cannot hold them")
        kinds = [k for k in KIND_ORDER if k in self.spools] or ["point"]  # an empty dataset: an empty point class
        home = max(kinds, key=lambda k: self.rows.get(k, 0))  # of the records without geometry
        for n, kind in enumerate(kinds):
            parts = [kind] if kind in self.spools else []
            parts += [NULL] if kind == home and NULL in self.spools else []
            reader = pa.RecordBatchReader.from_batches(self.layer_schema, self._batches(parts))
            name = self.layer if len(kinds) == 1 else f"{self.layer}_{kind}"
            with warnings.catch_warnings():
                # GDAL warns of a null datetime's unknown zone; every value is in UTC
                warnings.filterwarnings("ignore", "Attempt at writing a datetime with a unknown time zone", RuntimeWarning)
                self.write_layer(reader, name, GEOMETRY_TYPES[kind], append=n > 0)
        self._zip()

    def _batches(self, kinds: list[str]):
        for kind in kinds:
            with pa.memory_map(str(self.tmp / f"{kind}.arrow")) as source:
                spool = pa.ipc.open_file(source)
                for i in range(spool.num_record_batches):
                    yield spool.get_batch(i)

    def _zip(self) -> None:
        archive = ZipWriter(self.out)
        for path in sorted(self.target.rglob("*")):
            if not path.is_file():
                continue
            spool = DeflatedSpool(ZIP_LEVEL)
            try:
                with open(path, "rb") as src:
                    while chunk := src.read(COPY_CHUNK):
                        spool.write(chunk)
                archive.add(spool.entry(os.path.relpath(path, self.target.parent), b""))
            finally:
                spool.close()
        archive.close()


FORMAT = Format(
    reprojects=True,
    name="fgdb",
    extension="gdb.zip",
    media_type="application/zip",
    writer=FileGdbWriter,
    aliases=("filegdb", "gdb"),
    binary=True,
    needs=frozenset({"geometry"}),
    description="Esri File Geodatabase (a zipped .gdb folder): a feature class per geometry type, with its CRS.",
)
