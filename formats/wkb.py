"""WKB read without building geometries: the shapefile and FlatGeobuf writers take a geo_shape
column's coordinates straight from the WKB it is stored as. shapely.from_wkb builds a GEOS
geometry a value (a quarter of a FlatGeobuf polygon export's time); the usual values are walked
here with numpy instead, one nesting level at a time over the whole batch, and a broken value
still raises in the writer (the export fails with shapely's reason).

The walk is only ever a shortcut: it accepts 2D little-endian points, linestrings (two points
or more), polygons (closed rings of four points or more) and their multi- forms, exactly as
long as their bytes; every other value (big-endian, Z/M, collections, empty parts, rings not
closed byte for byte, many parts, trailing bytes, junk) goes through shapely.from_wkb, which
accepts it or raises. The walk also gives each value it vouches for its type and count (of
points, rings or parts), which the shapefile writer sorts rows by without parsing them."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pyarrow as pa

from formats.values import string_bytes

POINT, LINESTRING, POLYGON, MULTIPOINT, MULTILINESTRING, MULTIPOLYGON = range(1, 7)
HEADER = 9  # byte order (1), type (4), count of points, rings or parts (4); a point has 16 bytes of x, y instead
MAX_PARTS = 64  # rings of a polygon or parts of a multi-geometry walked here; more go to shapely
COORD = 16


class Walk(NamedTuple):
    """What the numpy walk learnt of each value of a binary column."""

    vouched: np.ndarray  # a value (not null) it read to the end: 2D little-endian WKB shapely reads
    types: np.ndarray  # the WKB geometry type (POINT … MULTIPOLYGON) of a vouched value, 0 for the others
    counts: np.ndarray  # the points of its linestring, rings of its polygon or parts of its multi-geometry


def walk(column: pa.BinaryArray) -> Walk:
    """The walk over every value of a binary (not large_binary) column: the values it vouches
    for, their types and counts; nulls and every other value are left to shapely."""
    data, offsets = string_bytes(column)
    if data.size < COORD:
        nothing = np.zeros(len(column), np.int64)
        return Walk(nothing.astype(bool), nothing, nothing)
    reader = _Bytes(data)
    starts, ends = offsets[:-1].astype(np.int64), offsets[1:].astype(np.int64)
    pos, ok = _geometry(reader, starts, ends, np.ones(len(column), bool), None)
    vouched = ok & (pos == ends) & column.is_valid().to_numpy(zero_copy_only=False)
    types = np.where(vouched, reader.count(starts + 1), 0)
    return Walk(vouched, types, np.where(vouched & (types != POINT), reader.count(starts + 5), 0))


class _Bytes:
    """The WKB bytes of a batch, read as little-endian numbers at any offsets (positions past
    the end read the last ones; the walk's bounds checks reject those values)."""

    def __init__(self, data: np.ndarray):
        self.data = data
        self.u32 = self._every(np.dtype("<u4"))
        self.xy = self._every(np.dtype((np.void, COORD)))

    def _every(self, dtype: np.dtype) -> np.ndarray:
        """The value of `dtype` starting at each byte (unaligned, overlapping: no copy)."""
        return np.ndarray((len(self.data) - dtype.itemsize + 1,), dtype, self.data, 0, (1,))

    def byte(self, pos: np.ndarray) -> np.ndarray:
        return self.data[np.minimum(pos, len(self.data) - 1)]

    def count(self, pos: np.ndarray) -> np.ndarray:
        return self.u32[np.minimum(pos, len(self.u32) - 1)].astype(np.int64)

    def same_coordinates(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Whether the 16 bytes (x, y) at `a` and at `b` are equal; positions within the data."""
        return self.xy[a] == self.xy[b]


def _geometry(data: _Bytes, pos: np.ndarray, end: np.ndarray, ok: np.ndarray,
              wanted: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(position after, still ok) of the geometry starting at each `pos`; `wanted` is the one
    type a multi-geometry's part may have."""
    kind = data.count(pos + 1)
    ok = ok & (pos + HEADER <= end) & (data.byte(pos) == 1)
    ok &= (kind == wanted) if wanted else (kind >= POINT) & (kind <= MULTIPOLYGON)
    count = data.count(pos + 5)
    after = pos + HEADER
    after[kind == POINT] = pos[kind == POINT] + 1 + 4 + COORD
    line = kind == LINESTRING
    ok &= ~line | (count >= 2)
    after[line] += COORD * count[line]
    polygon = ok & (kind == POLYGON)
    after[polygon], ok[polygon] = _rings(data, after[polygon], end[polygon], count[polygon])
    multi = ok & (kind >= MULTIPOINT)
    after[multi], ok[multi] = _parts(data, after[multi], end[multi], count[multi], kind[multi] - 3)
    return after, ok & (after <= end)


def _rings(data: _Bytes, pos: np.ndarray, end: np.ndarray, rings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walk the rings of polygons: four points or more, the last the first."""
    ok = (rings >= 1) & (rings <= MAX_PARTS)
    pos = pos.copy()
    for r in range(int(rings[ok].max(initial=0))):
        here = ok & (r < rings)
        at = pos[here]
        n = data.count(at)
        after = at + 4 + COORD * n
        good = (n >= 4) & (after <= end[here])
        good[good] = data.same_coordinates(at[good] + 4, after[good] - COORD)
        ok[here] = good
        pos[here] = np.where(good, after, at)
    return pos, ok


def _parts(data: _Bytes, pos: np.ndarray, end: np.ndarray, parts: np.ndarray,
           kinds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walk the parts of multi-geometries, each a geometry of the part type `kinds`."""
    ok = (parts >= 1) & (parts <= MAX_PARTS)
    pos = pos.copy()
    for k in range(int(parts[ok].max(initial=0))):
        here = ok & (k < parts)
        for kind in np.unique(kinds[here]):
            rows = np.flatnonzero(here & (kinds == kind))
            pos[rows], ok[rows] = _geometry(data, pos[rows], end[rows], ok[rows], int(kind))
    return pos, ok


class Runs(NamedTuple):
    """The coordinates of vouched values as runs of points, for writers that lay geometries out
    as coordinate arrays with ends (FlatGeobuf). A value is one shape, except a multipolygon,
    which is one shape a polygon; a shape is one run (point, linestring) or one a ring or part
    (polygon, multipoint, multilinestring). Shapes are in row order, runs in shape order."""

    shape_type: np.ndarray  # WKB type of each shape (POINT … MULTILINESTRING; a multipolygon's parts POLYGON)
    shape_row: np.ndarray  # the row (index among the values walked) each shape is of
    run_shape: np.ndarray  # the shape each run is of
    run_points: np.ndarray  # points in each run
    xy: np.ndarray  # (points, 2) float64: every run's coordinates, one after the other


def runs(column: pa.BinaryArray, rows: np.ndarray, types: np.ndarray) -> Runs:
    """The runs of the values at `rows` of `column`, which the walk vouched for as of `types`."""
    data, offsets = string_bytes(column)
    reader = _Bytes(data)
    starts = offsets[:-1].astype(np.int64)[rows]
    multi = types == MULTIPOLYGON
    shape_pos, shape_type, shape_row = [starts[~multi]], [types[~multi]], [np.flatnonzero(~multi)]
    polygons = np.flatnonzero(multi)
    at, parts = starts[multi] + HEADER, reader.count(starts[multi] + 5)
    for _ in range(int(parts.max(initial=0))):
        here = parts > 0
        shape_pos.append(at[here])
        shape_type.append(np.full(int(here.sum()), POLYGON))
        shape_row.append(polygons[here])
        at[here] = _polygon_end(reader, at[here])
        parts -= 1
    pos, kind = np.concatenate(shape_pos), np.concatenate(shape_type)
    order = np.argsort(np.concatenate(shape_row), kind="stable")  # a multipolygon's parts stay in order
    pos, kind, row = pos[order], kind[order], np.concatenate(shape_row)[order]
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []  # (shape, sequence, position, points)
    shapes = np.arange(len(pos))
    single = (kind == POINT) | (kind == LINESTRING)
    found.append((shapes[single], np.zeros(int(single.sum()), np.int64),
                  np.where(kind[single] == POINT, pos[single] + 5, pos[single] + HEADER),
                  np.where(kind[single] == POINT, 1, reader.count(pos[single] + 5))))
    for wanted in (POLYGON, MULTIPOINT, MULTILINESTRING):
        these = kind == wanted
        count, at = reader.count(pos[these] + 5), pos[these] + HEADER
        for k in range(int(count.max(initial=0))):
            here = k < count
            if wanted == POLYGON:  # a ring: its point count, then its points
                n = reader.count(at[here])
                found.append((shapes[these][here], np.full(len(n), k), at[here] + 4, n))
                at[here] += 4 + COORD * n
            elif wanted == MULTIPOINT:  # a whole point WKB
                found.append((shapes[these][here], np.full(int(here.sum()), k), at[here] + 5, np.ones(int(here.sum()), np.int64)))
                at[here] += 5 + COORD
            else:  # a whole linestring WKB
                n = reader.count(at[here] + 5)
                found.append((shapes[these][here], np.full(len(n), k), at[here] + HEADER, n))
                at[here] += HEADER + COORD * n
    run_shape, sequence, run_pos, run_points = (np.concatenate(parts) for parts in zip(*found))
    order = np.lexsort((sequence, run_shape))
    run_shape, run_pos, run_points = run_shape[order], run_pos[order], run_points[order]
    xy = segments(reader, run_pos, COORD * run_points).view("<f8").reshape(-1, 2)
    return Runs(kind, row, run_shape, run_points, xy)


VIEW = np.dtype([("length", "<i4"), ("prefix", "<u4"), ("buffer", "<i4"), ("offset", "<i4")])  # Arrow's binary view


def segments(reader: _Bytes, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The bytes data[starts[i]: starts[i] + lengths[i]] one after the other (every length over
    12), copied by Arrow: a binary view array of them, cast to binary. Copying them with a
    numpy index of every coordinate took three times as long."""
    views = np.empty(len(starts), VIEW)
    views["length"], views["prefix"], views["buffer"], views["offset"] = lengths, reader.u32[starts], 0, starts
    array = pa.Array.from_buffers(pa.binary_view(), len(starts), [None, pa.py_buffer(views), pa.py_buffer(reader.data)])
    copied = array.cast(pa.binary())
    data = copied.buffers()[2]
    return np.frombuffer(data, np.uint8, int(lengths.sum())) if data is not None else np.zeros(0, np.uint8)


def _polygon_end(reader: _Bytes, pos: np.ndarray) -> np.ndarray:
    """Where each polygon WKB starting at `pos` ends."""
    rings, at = reader.count(pos + 5), pos + HEADER
    for r in range(int(rings.max(initial=0))):
        here = r < rings
        at[here] += 4 + COORD * reader.count(at[here])
    return at
