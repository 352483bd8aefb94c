"""The .shp and .shx of a shapefile, written here with numpy a batch at a time: GDAL's driver
kept every record's offset and size in memory until it closed the file (a 10-million-point
export peaked at 447 MiB), and this is faster. The DBF is formats/dbf.py's.

ESRI's Shapefile Technical Description (1998): a .shp is a 100-byte header (file code 9994,
file length in 16-bit words, both big-endian; version 1000, shape type and bounding box,
little-endian), then records: a big-endian header (record number from 1, content length in
words) and the content, little-endian, starting with the shape type. The .shx has the same
header, then each record's offset and content length in words, big-endian. A file holds one
shape type and null shapes (type 0, content the type alone):

- Point (1): x, y.
- MultiPoint (8): box (xmin, ymin, xmax, ymax), point count, points.
- PolyLine (3) and Polygon (5): box, part count, point count, the index of each part's first
  point, points. A polygon's parts are its rings, each closed; an outer ring runs clockwise
  and a hole counter-clockwise, which is how readers tell them apart (GDAL's reader, like its
  writer, goes by that orientation, so rings are turned here where they run the other way).

Coordinates are 2D, as GDAL's layer wrote them (a z is dropped); a geometry that is empty, or
a point with a NaN coordinate, is a null shape, as GDAL wrote it."""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pyarrow as pa
import shapely

from formats import wkb
from formats.binary import join, running_totals, sliced
from formats.values import string_bytes

NULL, POINT, POLYLINE, POLYGON, MULTIPOINT = 0, 1, 3, 5, 8
SHAPE_TYPES = {"point": POINT, "multipoint": MULTIPOINT, "line": POLYLINE, "polygon": POLYGON}
FILE_CODE, VERSION = 9994, 1000
HEADER = 100
NULL_RECORD = 12  # record header and shape type
MAX_BYTES = 2 * (2**31 - 1)  # lengths and offsets are signed 32-bit counts of 16-bit words

RECORD_HEAD = [("number", ">i4"), ("length", ">i4"), ("type", "<i4")]
POINT_RECORD = np.dtype(RECORD_HEAD + [("x", "<f8"), ("y", "<f8")])
MULTIPOINT_HEAD = np.dtype(RECORD_HEAD + [("box", "<f8", 4), ("points", "<i4")])
PARTS_HEAD = np.dtype(RECORD_HEAD + [("box", "<f8", 4), ("parts", "<i4"), ("points", "<i4")])
INDEX_ENTRY = np.dtype([("offset", ">i4"), ("length", ">i4")])


class Runs:
    """Geometries of one kind as runs of points, in row order: a polygon's runs are its rings
    (a multipolygon's, of every part, in order), a line's or a multipoint's its parts."""

    def __init__(self, row: np.ndarray, points: np.ndarray, first: np.ndarray, xy: np.ndarray):
        self.row = row  # the row each run is of, sorted
        self.points = points  # points in each run (at least one)
        self.first = first  # whether it is the first run of its shape (a polygon's: its outer ring)
        self.xy = xy  # (points, 2) float64, every run's one after the other

    @staticmethod
    def of_wkb(column: pa.BinaryArray) -> "Runs":
        """The runs of every value of a WKB column (null, empty: none). The usual values
        (formats/wkb.py's walk) are read from their bytes, the others through shapely."""
        walked = wkb.walk(column)
        vouched = np.flatnonzero(walked.vouched)
        others = np.flatnonzero(column.is_valid().to_numpy(zero_copy_only=False) & ~walked.vouched)
        found = []
        if len(vouched):
            runs = wkb.runs(column, vouched, walked.types[vouched])
            found.append(Runs(vouched[runs.shape_row[runs.run_shape]], runs.run_points,
                              _starts_group(runs.run_shape), runs.xy))
        if len(others):
            found.append(Runs.of_geometries(shapely.from_wkb(column.take(pa.array(others)).to_numpy(zero_copy_only=False)),
                                            others))
        return Runs.merged(found)

    @staticmethod
    def of_geometries(geoms: np.ndarray, rows: np.ndarray) -> "Runs":
        """The runs of shapely geometries (None: none) that are of `rows`."""
        parts, owner = shapely.get_parts(geoms, return_index=True)
        first = _starts_group(owner)
        polygons = shapely.get_type_id(parts) == 3
        if polygons.any():  # a polygon's runs are its rings, the outer first; other parts are one run
            rings, ring_of = shapely.get_rings(parts[polygons], return_index=True)
            kept = np.flatnonzero(~polygons)
            parts = np.concatenate([parts[kept], rings])
            owner = np.concatenate([owner[kept], owner[polygons][ring_of]])
            first = np.concatenate([first[kept], _starts_group(ring_of)])
            order = np.argsort(owner, kind="stable")
            parts, owner, first = parts[order], owner[order], first[order]
        xy, of = shapely.get_coordinates(parts, return_index=True)
        points = np.bincount(of, minlength=len(parts))
        keep = points > 0
        return Runs(rows[owner[keep]], points[keep], first[keep], xy)

    @staticmethod
    def merged(found: list["Runs"]) -> "Runs":
        """Runs of several sets, each in row order, put in row order together."""
        if len(found) == 1:
            return found[0]
        if not found:
            return Runs(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, bool), np.zeros((0, 2)))
        row = np.concatenate([f.row for f in found])
        order = np.argsort(row, kind="stable")
        points = np.concatenate([f.points for f in found])
        run_of_point = np.repeat(np.arange(len(row)), points)
        place = np.empty(len(row), np.int64)
        place[order] = np.arange(len(row))
        xy = np.concatenate([f.xy for f in found])[np.argsort(place[run_of_point], kind="stable")]
        return Runs(row[order], points[order], np.concatenate([f.first for f in found])[order], xy)

    def oriented(self) -> "Runs":
        """The runs as polygon rings: outer rings clockwise, holes counter-clockwise."""
        if not len(self.points):
            return self
        starts = running_totals(self.points)[:-1]
        relative = self.xy - np.repeat(self.xy[starts], self.points, axis=0)  # small numbers: exact signs
        cross = relative[:-1, 0] * relative[1:, 1] - relative[1:, 0] * relative[:-1, 1]
        cross = np.append(cross, 0.0)
        cross[starts[1:] - 1] = 0.0  # no term from one ring's last point to the next ring's first
        area = np.add.reduceat(cross, starts)  # twice the signed area: positive counter-clockwise
        turn = np.where(self.first, area > 0, area < 0)
        if not turn.any():
            return self
        index = np.arange(len(self.xy))
        run_of_point = np.repeat(np.arange(len(self.points)), self.points)
        turned = turn[run_of_point]
        ends = starts + self.points - 1
        index[turned] = starts[run_of_point[turned]] + ends[run_of_point[turned]] - index[turned]
        return Runs(self.row, self.points, self.first, self.xy[index])


class ShapeFile:
    """A .shp and its .shx being written at `path` (.shp) for geometries of one kind (point,
    multipoint, line, polygon). Files are opened for each batch, so nothing is left open to
    close when the writer is dropped; `close` writes both headers."""

    def __init__(self, path: Path, kind: str):
        self.shp, self.shx = path.with_suffix(".shp"), path.with_suffix(".shx")
        self.shape_type = SHAPE_TYPES[kind]
        self.records = 0
        self.size = HEADER  # of the .shp
        self.box = np.array([np.inf, np.inf, -np.inf, -np.inf])
        for file in (self.shp, self.shx):
            file.write_bytes(bytes(HEADER))

    def write_wkb(self, column: pa.BinaryArray) -> None:
        """Write a record for each WKB value (a null or empty one: a null shape)."""
        if self.shape_type == POINT:
            self.write_points(*_point_coordinates(column))
        else:
            self._write_runs(Runs.of_wkb(column), len(column))

    def write_points(self, x: np.ndarray, y: np.ndarray) -> None:
        """Write a point record for each (x, y); a null shape where either is NaN."""
        n = len(x)
        present = ~(np.isnan(x) | np.isnan(y))
        records = np.zeros(n, POINT_RECORD)
        records["number"] = self._numbers(n)
        records["length"] = np.where(present, (POINT_RECORD.itemsize - 8) // 2, 2)
        records["type"] = np.where(present, POINT, NULL)
        records["x"], records["y"] = x, y
        if present.any():
            xy = np.column_stack([x[present], y[present]])
            self._grow_box(xy, xy)
        if present.all():
            self._append(records.view(np.uint8), np.full(n, POINT_RECORD.itemsize))
        else:
            self._append(_cut(records, present, NULL_RECORD), np.where(present, POINT_RECORD.itemsize, NULL_RECORD))

    def _write_runs(self, runs: Runs, n: int) -> None:
        if self.shape_type == POLYGON:
            runs = runs.oriented()
        parts = np.bincount(runs.row, minlength=n)
        points = np.bincount(runs.row, weights=runs.points, minlength=n).astype(np.int64)
        present = points > 0
        head_type = MULTIPOINT_HEAD if self.shape_type == MULTIPOINT else PARTS_HEAD
        heads = np.zeros(n, head_type)
        heads["number"] = self._numbers(n)
        heads["type"] = np.where(present, self.shape_type, NULL)
        heads["points"] = points
        first_point = running_totals(points)[:-1]
        if present.any():
            low = np.minimum.reduceat(runs.xy, first_point[present], axis=0)
            high = np.maximum.reduceat(runs.xy, first_point[present], axis=0)
            heads["box"][present] = np.column_stack([low, high])
            self._grow_box(low, high)
        head_sizes = np.where(present, head_type.itemsize, NULL_RECORD)
        sizes = head_sizes + 16 * points
        pieces = []
        if self.shape_type != MULTIPOINT:
            heads["parts"] = parts
            part_starts = (running_totals(runs.points)[:-1] - first_point[runs.row]).astype("<i4")
            pieces.append(sliced(part_starts.view(np.uint8), parts, 4))
            sizes += 4 * parts
        heads["length"] = (sizes - 8) // 2
        pieces.insert(0, sliced(_cut(heads, present, NULL_RECORD), head_sizes, 1))
        pieces.append(sliced(np.ascontiguousarray(runs.xy).view(np.uint8), points, 16))
        self._append(string_bytes(join(*pieces))[0], sizes)

    def _numbers(self, n: int) -> np.ndarray:
        return np.arange(self.records + 1, self.records + n + 1)

    def _grow_box(self, low: np.ndarray, high: np.ndarray) -> None:
        self.box[:2] = np.minimum(self.box[:2], low.min(axis=0))
        self.box[2:] = np.maximum(self.box[2:], high.max(axis=0))

    def _append(self, data: np.ndarray, sizes: np.ndarray) -> None:
        """Append records (`data`, one after the other, each of `sizes` bytes) and their index entries."""
        total = int(sizes.sum())
        if self.size + total > MAX_BYTES:
            raise ValueError(f"{self.shp.name} would pass the 4 GiB a shapefile can hold")
        index = np.empty(len(sizes), INDEX_ENTRY)
        index["offset"] = (self.size + running_totals(sizes)[:-1]) // 2
        index["length"] = (sizes - 8) // 2
        with open(self.shp, "ab") as shp, open(self.shx, "ab") as shx:
            shp.write(memoryview(data[:total]))
            shx.write(memoryview(index.view(np.uint8)))
        self.records += len(sizes)
        self.size += total

    def close(self) -> None:
        """Write the headers of the .shp and the .shx."""
        box = self.box if self.records and np.isfinite(self.box).all() else np.zeros(4)
        for file, size in ((self.shp, self.size), (self.shx, HEADER + 8 * self.records)):
            with open(file, "r+b") as f:
                f.write(struct.pack(">7i", FILE_CODE, 0, 0, 0, 0, 0, size // 2)
                        + struct.pack("<2i8d", VERSION, self.shape_type, *box, 0.0, 0.0, 0.0, 0.0))


def _point_coordinates(column: pa.BinaryArray) -> tuple[np.ndarray, np.ndarray]:
    """x and y of each WKB point (NaN where null or empty), read from the bytes of the values
    the walk vouches for, through shapely for the others."""
    walked = wkb.walk(column)
    x, y = np.full(len(column), np.nan), np.full(len(column), np.nan)
    vouched = np.flatnonzero(walked.vouched)
    if len(vouched):
        data, offsets = string_bytes(column)
        at = offsets[:-1][vouched].astype(np.int64) + 5
        coords = np.ndarray((len(data) - 15,), np.dtype([("x", "<f8"), ("y", "<f8")]), data, 0, (1,))[at]
        x[vouched], y[vouched] = coords["x"], coords["y"]
    others = np.flatnonzero(column.is_valid().to_numpy(zero_copy_only=False) & ~walked.vouched)
    if len(others):
        geoms = shapely.from_wkb(column.take(pa.array(others)).to_numpy(zero_copy_only=False))
        x[others], y[others] = shapely.get_x(geoms), shapely.get_y(geoms)
    return x, y


def _cut(records: np.ndarray, whole: np.ndarray, short: int) -> np.ndarray:
    """The bytes of structured `records`, one after the other, only the first `short` bytes of
    each that is not `whole`."""
    matrix = records.view(np.uint8).reshape(len(records), records.dtype.itemsize)
    keep = np.ones(matrix.shape, bool)
    keep[~whole, short:] = False
    return matrix[keep]


def _starts_group(group: np.ndarray) -> np.ndarray:
    """Whether each element of a sorted array differs from the one before it."""
    return np.concatenate([[True], group[1:] != group[:-1]]) if len(group) else np.zeros(0, bool)
