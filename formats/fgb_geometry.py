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

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

TABLE = 20  # where a block's table starts, after its vtable (padded to 20 bytes)
# shapely's type ids (Point … GeometryCollection, LinearRing as a linestring) -> FlatGeobuf's GeometryType
FGB_TYPES = np.array([1, 2, 2, 3, 4, 5, 6, 7], np.uint8)
WITH_PARTS = (6, 7)  # shapely ids of the types whose parts are blocks: multipolygon, collection
WITH_ENDS = (3, 5)  # polygon (ring ends), multilinestring (linestring ends)
EMPTY = pa.scalar(b"", pa.binary())

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


def fixed(records: np.ndarray, valid: np.ndarray | None = None) -> pa.BinaryArray:
    """Each record of a structured array as one binary value of its bytes; null where `valid`
    (booleans, if given) is False."""
    size = records.dtype.itemsize
    offsets = np.arange(0, size * (len(records) + 1), size, dtype=np.int32)
    nulls = 0 if valid is None else len(valid) - int(np.count_nonzero(valid))
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little")) if nulls else None
    return pa.BinaryArray.from_buffers(pa.binary(), len(records), [bitmap, pa.py_buffer(offsets),
                                                                    pa.py_buffer(np.ascontiguousarray(records))],
                                       null_count=nulls)


def sliced(data: np.ndarray, counts: np.ndarray, unit: int) -> pa.BinaryArray:
    """Binary values cut one after the other from `data`'s bytes, value i `counts[i] * unit` long."""
    offsets = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=offsets[1:])
    offsets *= unit
    return pa.BinaryArray.from_buffers(pa.binary(), len(counts), [None, pa.py_buffer(offsets.astype(np.int32)),
                                                                   pa.py_buffer(np.ascontiguousarray(data))])


def join(*parts: pa.Array) -> pa.BinaryArray:
    return pc.binary_join_element_wise(*parts, b"")


def _simple_head(head: np.ndarray) -> np.ndarray:
    """`head` (SIMPLE's fields, zeroed) with what every block with coordinates has."""
    head["vtable_size"], head["table_size"], head["xy_at"], head["type_at"] = 18, 16, 4, 12
    head["soffset"], head["xy"] = TABLE, 12  # the xy vector at 36, seen from its offset at 24
    return head


def point_blocks(x: np.ndarray, y: np.ndarray) -> pa.BinaryArray:
    """The block of each point (x[i], y[i]): 56 bytes each."""
    records = _simple_head(np.zeros(len(x), POINT))
    records["type"], records["xy_count"], records["x"], records["y"] = 1, 2, x, y
    return fixed(records)


def blocks(geoms: np.ndarray) -> pa.BinaryArray:
    """The block of each shapely geometry, of any types mixed; none may be None or empty."""
    kinds = shapely.get_type_id(geoms)
    multi = np.isin(kinds, WITH_PARTS)
    if not multi.any():
        return _simple(geoms, kinds)
    if multi.all():
        return _multi(geoms, kinds)
    rows = np.concatenate([np.flatnonzero(~multi), np.flatnonzero(multi)])
    together = pa.concat_arrays([_simple(geoms[~multi], kinds[~multi]), _multi(geoms[multi], kinds[multi])])
    return together.take(pa.array(np.argsort(rows)))


def _simple(geoms: np.ndarray, kinds: np.ndarray) -> pa.BinaryArray:
    """Blocks of points, linestrings, polygons, multipoints and multilinestrings."""
    n = len(geoms)
    coords, owners = shapely.get_coordinates(geoms, return_index=True)
    counts = np.bincount(owners, minlength=n)
    head = _simple_head(np.zeros(n, SIMPLE))
    head["type"], head["xy_count"] = FGB_TYPES[kinds], 2 * counts  # doubles, not points
    ends = _ends(geoms, kinds, counts)
    has_ends = ends.counts > 0
    head["ends_at"][has_ends] = 8
    head["ends"] = 12 + 16 * counts  # the ends vector right after the doubles, seen from its offset at 28
    return join(fixed(head), sliced(coords, counts, 16), sliced(ends.data, ends.counts, 4))


class _Ends:
    """The ends vectors of a run of blocks as one uint32 array: for each block with more than one
    ring or part, its count, the end (in points) of each, and a 0 where that leaves the block's
    size short of a multiple of 8; `counts` says how many uint32 each block has (0: no vector)."""

    def __init__(self, data: np.ndarray, counts: np.ndarray):
        self.data, self.counts = data, counts


def _ends(geoms: np.ndarray, kinds: np.ndarray, counts: np.ndarray) -> _Ends:
    n = len(geoms)
    rows = np.flatnonzero(np.isin(kinds, WITH_ENDS))
    pieces = np.zeros(n, np.int64)
    if len(rows):
        polygons = kinds[rows] == 3
        rings, ring_owner = shapely.get_rings(geoms[rows[polygons]], return_index=True)
        lines, line_owner = shapely.get_parts(geoms[rows[~polygons]], return_index=True)
        parts = np.concatenate([rings, lines])
        owner = np.concatenate([rows[polygons][ring_owner], rows[~polygons][line_owner]])
        order = np.argsort(owner, kind="stable")
        parts, owner = parts[order], owner[order]
        pieces = np.bincount(owner, minlength=n)
    with_ends = pieces > 1
    if not with_ends.any():
        return _Ends(np.zeros(0, np.uint32), np.zeros(n, np.int64))
    keep = with_ends[owner]
    parts, owner = parts[keep], owner[keep]
    sizes = pieces * with_ends
    lengths = np.where(with_ends, 1 + sizes + (sizes % 2 == 0), 0)  # count, ends, padding to 8
    starts = np.zeros(n + 1, np.int64)
    np.cumsum(lengths, out=starts[1:])
    data = np.zeros(starts[-1], np.uint32)
    data[starts[:-1][with_ends]] = sizes[with_ends]
    cumulative = np.cumsum(shapely.get_num_coordinates(parts))
    first = np.zeros(n, np.int64)  # points before each block's first part, among the kept parts
    part_start = np.zeros(n + 1, np.int64)
    np.cumsum(sizes, out=part_start[1:])
    first[with_ends] = np.concatenate([[0], cumulative])[part_start[:-1][with_ends]]
    within = np.arange(len(parts)) - part_start[owner]
    data[starts[owner] + 1 + within] = cumulative - first[owner]
    return _Ends(data, lengths)


def _multi(geoms: np.ndarray, kinds: np.ndarray) -> pa.BinaryArray:
    """Blocks of multipolygons and collections: each part a block of its own, after the
    table's vector of offsets to them."""
    n = len(geoms)
    parts, owners = shapely.get_parts(geoms, return_index=True)
    keep = ~shapely.is_empty(parts)
    parts, owners = parts[keep], owners[keep]
    inner = blocks(parts)
    sizes = pc.binary_length(inner).to_numpy().astype(np.int64)
    k = np.bincount(owners, minlength=n)
    head = np.zeros(n, MULTI)
    head["vtable_size"], head["table_size"], head["type_at"], head["parts_at"] = 20, 12, 8, 4
    head["soffset"], head["parts"] = TABLE, 8  # the parts vector at 32, seen from its offset at 24
    head["type"], head["parts_count"] = FGB_TYPES[kinds], k
    # offsets: count (already in head), k uint32, padding so the first part starts at a multiple of 8
    vector_words = k + (k % 2 == 0)
    first_part = 36 + 4 * vector_words  # from the block's start
    first_of = np.zeros(n + 1, np.int64)
    np.cumsum(k, out=first_of[1:])
    before = np.zeros(len(parts) + 1, np.int64)  # bytes of the blocks before each part, across the run
    np.cumsum(sizes, out=before[1:])
    j = np.arange(len(parts)) - first_of[owners]
    within = before[:-1] - before[first_of[owners]]
    offsets = np.zeros(int(vector_words.sum()), np.uint32)
    word_start = np.zeros(n + 1, np.int64)
    np.cumsum(vector_words, out=word_start[1:])
    offsets[word_start[owners] + j] = first_part[owners] + within + TABLE - (36 + 4 * j)
    grouped = pa.ListArray.from_arrays(pa.array(first_of.astype(np.int32)), inner)
    return join(fixed(head), sliced(offsets, vector_words, 4), pc.binary_join(grouped, b""))
