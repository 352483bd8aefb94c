"""Plumbing shared by the geographic formats (shp, fgb, kml, gpx, all written here): geometries
out of a batch, reprojection for the common `epsg` option and the CRS's names (through GDAL,
fiona's, loaded by the first export that needs it), attribute columns as the layers take them,
field-name laundering, and a writer base that owns a temporary directory and removes it on
close, on error, on abort and when dropped. A file finished there becomes the output by a
rename where the storage allows (domain.storage.base.adopt), else by a copy."""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import unicodedata
import weakref
from pathlib import Path
from typing import Any, BinaryIO, Sequence

import numpy as np
import pyarrow as pa
import shapely

from domain.fields import Field
from domain.storage.base import adopt
from formats.base import WGS84, OptionError, Writer
from formats.binary import fixed
from formats.values import datetime_strings, point_coords

PLAIN = {"text": pa.string(), "int": pa.int64(), "double": pa.float64(), "boolean": pa.bool_()}
COPY_CHUNK = 1 << 20


def geometry_index(fields: Sequence[Field], prefer: Sequence[str] = ("geo_shape", "geo_point_2d")) -> int:
    """The column the geometry comes from: the first field of the first preferred type."""
    for wanted in prefer:
        for i, f in enumerate(fields):
            if f.type == wanted:
                return i
    raise ValueError("no geometry field")


def geometries(column: pa.Array, field_type: str) -> np.ndarray:
    """Shapely geometries (None where null) from a geo_shape (WKB) or geo_point_2d column."""
    if field_type == "geo_shape":
        return shapely.from_wkb(column.to_numpy(zero_copy_only=False))
    lon, lat = point_coords(column)
    valid = column.is_valid().to_numpy(zero_copy_only=False)
    out = np.full(len(column), None, dtype=object)
    out[valid] = shapely.points(lon.to_numpy(zero_copy_only=False)[valid], lat.to_numpy(zero_copy_only=False)[valid])
    return out


def wkb(geoms: np.ndarray) -> pa.Array:
    return pa.array(shapely.to_wkb(geoms), pa.binary())


# a WKB point, little-endian: byte order, type (1), x, y
POINT_WKB = np.dtype([("order", "u1"), ("type", "<u4"), ("x", "<f8"), ("y", "<f8")])


def point_wkb(x: np.ndarray, y: np.ndarray) -> pa.BinaryArray:
    """WKB points of (x, y), made with numpy (shapely took a third of a GeoPackage export);
    null where either is NaN (a null point, or one PROJ could not move)."""
    records = np.zeros(len(x), POINT_WKB)
    records["order"], records["type"], records["x"], records["y"] = 1, 1, x, y
    return fixed(records, np.isfinite(x) & np.isfinite(y))


def esri_wkt(epsg: int) -> str:
    """The CRS `epsg` as WKT 1 in ESRI's dialect: what GDAL's shapefile driver writes in a .prj."""
    from fiona.crs import CRS

    return CRS.from_epsg(epsg).to_wkt(version="WKT1_ESRI")


def point_xy(column: pa.StructArray, epsg: int = WGS84) -> tuple[np.ndarray, np.ndarray]:
    """x and y of each point of a geo_point_2d column moved to `epsg`; NaN where it is null."""
    lon, lat = point_coords(column)
    return moved(lon.fill_null(np.nan).to_numpy(), lat.fill_null(np.nan).to_numpy(), epsg)


def check_epsg(epsg: int) -> str:
    """'EPSG:n' if GDAL knows the code, else OptionError. WGS 84, the default, is not looked
    up: opening PROJ's database took 3% of a FlatGeobuf export."""
    if epsg == WGS84:
        return f"EPSG:{WGS84}"
    from fiona.crs import CRS  # GDAL, loaded by the first export that needs it
    from fiona.errors import CRSError
    try:
        CRS.from_epsg(epsg)
    except (CRSError, ValueError):
        raise OptionError(f"option 'epsg': unknown EPSG code {epsg}") from None
    return f"EPSG:{epsg}"


def reproject(geoms: np.ndarray, epsg: int) -> np.ndarray:
    """Geometries moved from WGS 84 (lon, lat) to `epsg`, all coordinates in one GDAL call;
    None where any of a geometry's points cannot be moved."""
    if epsg == WGS84:
        return geoms
    geoms = shapely.transform(geoms, lambda coords: np.column_stack(moved(coords[:, 0], coords[:, 1], epsg)))
    coords, owner = shapely.get_coordinates(geoms, return_index=True)
    lost = np.unique(owner[~np.isfinite(coords).all(axis=1)])
    if len(lost):  # a shape GDAL could not move wholly is no shape at all, not a torn one
        geoms = geoms.copy()
        geoms[lost] = None
    return geoms


def moved(xs: np.ndarray, ys: np.ndarray, epsg: int) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates moved from WGS 84 (lon, lat) to `epsg`, in one GDAL call; NaN where the
    input is NaN (a null point) or GDAL cannot move it. GDAL turns a NaN into infinity, which
    a writer would take for a coordinate (a shapefile's POINT (inf inf) and a 0,0 extent)."""
    if epsg == WGS84 or not len(xs):
        return xs, ys
    from fiona.transform import transform as fiona_transform
    known = np.isfinite(xs) & np.isfinite(ys)
    out_x, out_y = np.full(len(xs), np.nan), np.full(len(xs), np.nan)
    if known.any():
        moved = fiona_transform("EPSG:4326", f"EPSG:{epsg}", xs[known].tolist(), ys[known].tolist())
        out_x[known], out_y[known] = moved
    lost = ~(np.isfinite(out_x) & np.isfinite(out_y))
    out_x[lost], out_y[lost] = np.nan, np.nan
    return out_x, out_y


def launder(names: Sequence[str], max_length: int | None = None, reserved: Sequence[str] = ()) -> list[str]:
    """Names GDAL drivers and DBF readers take: ASCII letters, digits and `_`, at most
    `max_length` characters, unique ignoring case and unlike `reserved`; a clash keeps the
    first and numbers the next ones within the length (organiser_, organise_1). Deterministic."""
    taken = {r.upper() for r in reserved}
    out: list[str] = []
    for name in names:
        ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
        base = re.sub(r"[^A-Za-z0-9_]", "_", ascii_name) or "field"
        candidate = base[:max_length]
        n = 0
        while candidate.upper() in taken:
            n += 1
            suffix = f"_{n}"
            candidate = (base[: max_length - len(suffix)] if max_length else base) + suffix
        taken.add(candidate.upper())
        out.append(candidate)
    return out


def attribute_type(field_type: str) -> pa.DataType:
    """How an attribute is written: plain types as they are, dates as date32, datetimes as
    ISO 8601 text in the `timezone` option."""
    if field_type in PLAIN:
        return PLAIN[field_type]
    return pa.date32() if field_type == "date" else pa.string()


def attribute(column: pa.Array, field_type: str, timezone: str) -> pa.Array:
    return datetime_strings(column, timezone) if field_type == "datetime" else column


def scratch_dir(out: BinaryIO) -> Path:
    """A new temporary directory for a writer's files: beside `out`'s file when it has one, named
    after it (`<name>.scratch-xxxxxxxx`), else in the system's temporary directory. Beside it, a
    finished file can be renamed onto `out` rather than copied (the system's one is often
    another file system, a tmpfs); and the storage's partial sweep takes a directory named
    after a partial file for that partial's, so a killed worker's is removed with its partial."""
    name = getattr(out, "name", None)
    if isinstance(name, str) and os.path.isfile(name):
        return Path(tempfile.mkdtemp(prefix=f"{os.path.basename(name)}.scratch-", dir=os.path.dirname(name)))
    return Path(tempfile.mkdtemp(prefix="exportd-scratch-"))


def _remove(directory: Path, threads: list[Any]) -> None:
    for thread in threads:
        thread.abort()
    shutil.rmtree(directory, ignore_errors=True)


class ScratchWriter(Writer):
    """A writer whose files go to a temporary directory first. Subclasses implement
    `_write` and `_finish` (which hands the result to `out`: copy_out); the directory is removed
    after close, after any exception in write or close, on `abort()`, and if the writer is
    dropped unclosed (garbage collection)."""

    def __init__(self, out, schema, fields, options):
        super().__init__(out, schema, fields, options)
        self.tmp = scratch_dir(out)
        self.threads: list[Any] = []  # helpers writing on threads of their own: closed before _finish, aborted with it
        self._cleanup = weakref.finalize(self, _remove, self.tmp, self.threads)

    def write(self, batch: pa.RecordBatch) -> None:
        try:
            self._write(batch)
        except BaseException:
            self.abort()
            raise

    def close(self) -> None:
        try:
            for thread in self.threads:
                thread.close()
            self._finish()
        finally:
            self.abort()

    def abort(self) -> None:
        """Remove every temporary file; safe to call more than once."""
        self._cleanup()

    def copy_out(self, path: Path) -> None:
        """The finished file at `path` as the whole output: renamed onto `out` where the
        storage can take it so (saving a copy of what may be tens of megabytes), else copied."""
        if adopt(self.out, path):
            return
        with open(path, "rb") as f:
            shutil.copyfileobj(f, self.out, COPY_CHUNK)

    def _write(self, batch: pa.RecordBatch) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        raise NotImplementedError
