"""FlatGeobuf geometries (feature.fbs's Geometry table) as bytes, built over whole arrays with
numpy, shapely's vectorized functions and pyarrow's element-wise joins: no Python per record.

Each geometry is a block that holds itself whole: its vtable, its table at TABLE, then its
vectors. Every offset inside a block is relative to where it stands, so a block is valid
wherever it is placed at a position that is a multiple of 8 (its doubles stay aligned), and
every block's size is a multiple of 8. Points, linestrings, polygons, multipoints and
multilinestrings keep their coordinates in `xy` and their ring or part ends in `ends`;
multipolygons and collections hold their parts as blocks of their own, as GDAL writes them.
Coordinates are 2D: a layer written here declares no z (GDAL's writer dropped it too)."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from formats import wkb
from formats.binary import fixed, join, running_totals, sliced

TABLE = 20  # where a block's table starts, after its vtable (padded to 20 bytes)
# shapely's type ids (Point … GeometryCollection, LinearRing as a linestring) -> FlatGeobuf's GeometryType
FGB_TYPES = np.array([1, 2, 2, 3, 4, 5, 6, 7], np.uint8)
WITH_PARTS = (6, 7)  # shapely ids of the types whose parts are blocks: multipolygon, collection
WITH_ENDS = (3, 5)  # polygon (ring ends), multilinestring (linestring ends)

# vtable slots (feature.fbs field order): ends, xy, z, m, t, tm, type, parts
_VTABLE = [(name, "<u2") for name in ("vtable_size", "table_size", "ends_at", "xy_at", "z_at", "m_at", "t_at", "tm_at",
                                      "type_at", "parts_at")]
# A block with coordinates: vtable (18 bytes, padded), table (soffset, xy, ends, type), xy length; then
# the doubles (at 40: aligned), then the ends vector and padding to 8.
SIMPLE = np.dtype(_VTABLE + [("soffset", "<i4"), ("xy", "<u4"), ("ends", "<u4"), ("type", "u1"), ("pad", "V3"),
                             ("xy_count", "<u4")])
# A block with parts: vtable (20 bytes), table (soffset, parts, type), parts length; then one offset
# a part, padding to 8 and the parts' blocks.
MULTI = np.dtype(_VTABLE + [("soffset", "<i4"), ("parts", "<u4"), ("type", "u1"), ("pad", "V3"),
                            ("parts_count", "<u4")])
POINT = np.dtype(SIMPLE.descr + [("x", "<f8"), ("y", "<f8")])
assert SIMPLE.itemsize == 40 and MULTI.itemsize == 36 and POINT.itemsize == 56


class Blocks(NamedTuple):
    """Geometry blocks as pieces whose values, joined row by row, are the blocks (so that a
    feature can be joined from them at once, not copied twice), and the size of each."""

    pieces: tuple[pa.Array, ...]
    sizes: np.ndarray

    def joined(self) -> pa.BinaryArray:
        return self.pieces[0] if len(self.pieces) == 1 else join(*self.pieces)

    def take(self, rows: np.ndarray) -> "Blocks":
        """The blocks at `rows`, null (size 0) where a row is -1."""
        missing = rows < 0
        taken = self.joined().take(pa.array(rows, mask=missing if missing.any() else None))
        return Blocks((taken,), np.where(missing, 0, self.sizes[np.where(missing, 0, rows)] if len(self.sizes) else 0))

    @staticmethod
    def ordered(parts: list["Blocks"], rows: list[np.ndarray], n: int) -> "Blocks":
        """n blocks from `parts`, the blocks of parts[i] going to rows[i] (-1: dropped); rows
        that none goes to are null."""
        if len(parts) == 1 and len(rows[0]) == n and (rows[0] == np.arange(n)).all():
            return parts[0]
        where = np.full(n, -1, np.int64)
        targets = np.concatenate(rows)
        kept = targets >= 0
        where[targets[kept]] = np.flatnonzero(kept)
        together = Blocks((pa.concat_arrays([part.joined() for part in parts]),),
                          np.concatenate([part.sizes for part in parts]))
        return together.take(where)


def _simple_head(head: np.ndarray) -> np.ndarray:
    """`head` (SIMPLE's fields, zeroed) with what every block with coordinates has."""
    head["vtable_size"], head["table_size"], head["xy_at"], head["type_at"] = 18, 16, 4, 12
    head["soffset"], head["xy"] = TABLE, 12  # the xy vector at 36, seen from its offset at 24
    return head


def point_blocks(x: np.ndarray, y: np.ndarray) -> Blocks:
    """The block of each point (x[i], y[i]): 56 bytes each."""
    records = _simple_head(np.zeros(len(x), POINT))
    records["type"], records["xy_count"], records["x"], records["y"] = 1, 2, x, y
    return Blocks((fixed(records),), np.full(len(x), POINT.itemsize, np.int64))


def blocks(geoms: np.ndarray) -> Blocks:
    """The block of each shapely geometry, of any types mixed; none may be None or empty."""
    kinds = shapely.get_type_id(geoms)
    multi = np.isin(kinds, WITH_PARTS)
    if not multi.any():
        return simple_blocks(FGB_TYPES[kinds], *_runs(geoms, kinds))
    simple, parts = np.flatnonzero(~multi), np.flatnonzero(multi)
    return Blocks.ordered([simple_blocks(FGB_TYPES[kinds[simple]], *_runs(geoms[simple], kinds[simple])),
                           _multi(geoms[parts], kinds[parts])], [simple, parts], len(geoms))


def _runs(geoms: np.ndarray, kinds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(coordinates, the shape each run is of, points in each run) of geometries whose parts
    are not blocks: a polygon's runs are its rings, a multilinestring's its linestrings, any
    other geometry is one run."""
    xy, owners = shapely.get_coordinates(geoms, return_index=True)
    run_shape, run_points = np.arange(len(geoms)), np.bincount(owners, minlength=len(geoms))
    split = np.isin(kinds, WITH_ENDS)
    if split.any():
        rows = np.flatnonzero(split)
        polygons = kinds[rows] == 3
        rings, ring_owner = shapely.get_rings(geoms[rows[polygons]], return_index=True)
        lines, line_owner = shapely.get_parts(geoms[rows[~polygons]], return_index=True)
        run_shape = np.concatenate([run_shape[~split], rows[polygons][ring_owner], rows[~polygons][line_owner]])
        run_points = np.concatenate([run_points[~split], shapely.get_num_coordinates(np.concatenate([rings, lines]))])
        order = np.argsort(run_shape, kind="stable")
        run_shape, run_points = run_shape[order], run_points[order]
    return xy, run_shape, run_points


def simple_blocks(types: np.ndarray, xy: np.ndarray, run_shape: np.ndarray, run_points: np.ndarray) -> Blocks:
    """Blocks of shapes with coordinates (points, linestrings, polygons, multipoints,
    multilinestrings; `types` FlatGeobuf's): `xy` all their coordinates, in runs (`run_shape`
    the shape of each, sorted; `run_points` its points). The runs of a polygon (its rings) or a
    multilinestring (its linestrings) make its `ends` when it has more than one."""
    n = len(types)
    counts = np.bincount(run_shape, weights=run_points, minlength=n).astype(np.int64)
    head = _simple_head(np.zeros(n, SIMPLE))
    head["type"], head["xy_count"] = types, 2 * counts  # doubles, not points
    head["ends"] = 12 + 16 * counts  # the ends vector right after the doubles, seen from its offset at 28
    runs = np.bincount(run_shape, minlength=n)
    with_ends = ((types == 3) & (runs > 1)) | (types == 5)  # GDAL reads no multilinestring without ends
    head["ends_at"][with_ends] = 8
    lengths = np.where(with_ends, 1 + runs + (runs % 2 == 0), 0)  # uint32s: count, ends, padding to 8
    ends = np.zeros(int(lengths.sum()), np.uint32)
    if with_ends.any():
        first_word = running_totals(lengths)
        ends[first_word[:-1][with_ends]] = runs[with_ends]
        kept = with_ends[run_shape]
        shape, points = run_shape[kept], run_points[kept]
        total = np.cumsum(points)
        first_run = running_totals(runs * with_ends)
        before = np.concatenate([[0], total])[first_run[shape]]  # points of the kept runs before the shape's
        ends[first_word[shape] + 1 + np.arange(len(shape)) - first_run[shape]] = total - before
    return Blocks((fixed(head), sliced(xy, counts, 16), sliced(ends, lengths, 4)), SIMPLE.itemsize + 16 * counts + 4 * lengths)


def _multi(geoms: np.ndarray, kinds: np.ndarray) -> Blocks:
    """Blocks of multipolygons and collections from their parts' blocks."""
    parts, owners = shapely.get_parts(geoms, return_index=True)
    keep = ~shapely.is_empty(parts)
    return multi_blocks(FGB_TYPES[kinds], blocks(parts[keep]), owners[keep])


def multi_blocks(types: np.ndarray, inner: Blocks, owners: np.ndarray) -> Blocks:
    """Blocks of geometries with parts (multipolygons, collections; `types` FlatGeobuf's):
    `inner` the block of each part, `owners` (sorted) the geometry it is of. Each block is the
    table, its vector of offsets to the parts, padding to 8, then the parts' blocks."""
    n = len(types)
    sizes = inner.sizes
    k = np.bincount(owners, minlength=n)
    head = np.zeros(n, MULTI)
    head["vtable_size"], head["table_size"], head["type_at"], head["parts_at"] = 20, 12, 8, 4
    head["soffset"], head["parts"] = TABLE, 8  # the parts vector at 32, seen from its offset at 24
    head["type"], head["parts_count"] = types, k
    vector_words = k + (k % 2 == 0)  # offsets, and padding so the first part starts at a multiple of 8
    first_part = 36 + 4 * vector_words  # from the block's start
    first_of = running_totals(k)
    before = running_totals(sizes)  # bytes of the blocks before each part, across the run
    j = np.arange(len(sizes)) - first_of[owners]
    within = before[:-1] - before[first_of[owners]]
    offsets = np.zeros(int(vector_words.sum()), np.uint32)
    word_start = running_totals(vector_words)
    offsets[word_start[owners] + j] = first_part[owners] + within + TABLE - (36 + 4 * j)
    grouped = pa.ListArray.from_arrays(pa.array(first_of.astype(np.int32)), inner.joined())
    return Blocks((fixed(head), sliced(offsets, vector_words, 4), pc.binary_join(grouped, b"")),
                  first_part + np.bincount(owners, weights=sizes, minlength=n).astype(np.int64))


def wkb_blocks(column: pa.Array) -> tuple[Blocks, np.ndarray, np.ndarray]:
    """(the block of each WKB value that has a geometry, bounds (n, 4) of every value, NaN
    where it has none, which have one). The usual values (2D little-endian, formats/wkb.py's
    walk) are read from their bytes with numpy; the others through shapely, which raises for a
    value that is not WKB. Null, empty and NaN-coordinate geometries have none."""
    column = column.cast(pa.binary())
    walked = wkb.walk(column)
    vouched = np.flatnonzero(walked.vouched)
    others = np.flatnonzero(column.is_valid().to_numpy(zero_copy_only=False) & ~walked.vouched)
    bounds = np.full((len(column), 4), np.nan)
    parts, rows = [], []
    if len(vouched):
        types = walked.types[vouched]
        parts.append(_vouched_blocks(wkb.runs(column, vouched, types), types, bounds, vouched))
        rows.append(vouched)
    if len(others):
        geoms = shapely.from_wkb(column.take(pa.array(others)).to_numpy(zero_copy_only=False))
        bounds[others] = shapely.bounds(geoms)
        keep = ~shapely.is_empty(geoms) & np.isfinite(bounds[others]).all(axis=1)
        parts.append(blocks(geoms[keep]))
        rows.append(others[keep])
    present = np.isfinite(bounds).all(axis=1)
    if not parts:
        return Blocks((pa.array([], pa.binary()),), np.zeros(0, np.int64)), bounds, present
    # in row order, the rows with a geometry only (a vouched NaN point has none)
    at = np.full(len(column), -1, np.int64)
    at[present] = np.arange(int(present.sum()))
    return Blocks.ordered(parts, [at[r] for r in rows], int(present.sum())), bounds, present


def _vouched_blocks(runs: wkb.Runs, types: np.ndarray, bounds: np.ndarray, rows: np.ndarray) -> Blocks:
    """Blocks of the walked values at `rows` (of WKB `types`), their bounds put in `bounds`."""
    n = len(rows)
    points = np.bincount(runs.shape_row[runs.run_shape], weights=runs.run_points, minlength=n).astype(np.int64)
    firsts = running_totals(points)[:-1]
    bounds[rows, :2] = np.minimum.reduceat(runs.xy, firsts, axis=0)
    bounds[rows, 2:] = np.maximum.reduceat(runs.xy, firsts, axis=0)
    shapes = simple_blocks(runs.shape_type.astype(np.uint8), runs.xy, runs.run_shape, runs.run_points)
    multi = types == wkb.MULTIPOLYGON
    if not multi.any():
        return shapes
    in_multi = multi[runs.shape_row]
    owners = (np.cumsum(multi) - 1)[runs.shape_row[in_multi]]  # among the multipolygons
    outer = multi_blocks(np.full(int(multi.sum()), 6, np.uint8), shapes.take(np.flatnonzero(in_multi)), owners)
    return Blocks.ordered([shapes.take(np.flatnonzero(~in_multi)), outer],
                          [np.flatnonzero(~multi), np.flatnonzero(multi)], n)
