"""FlatGeobuf (flatgeobuf.org, version 3): one binary file, with a packed Hilbert R-tree index by
default. Geometry from geo_shape (any type, mixed allowed), else geo_point_2d; dates and
datetimes typed as FlatGeobuf's DateTime (ISO 8601 text: dates at midnight, datetimes in the
`timezone` option with its offset), which GDAL reads as DateTime. The index cannot hold a
feature without geometry, so with `spatial_index` (default) records without geometry (or
with an empty one) are skipped and counted; without it they are kept.

Written here rather than by GDAL's driver, whose own write took 95% of a polygon export: every
feature of a batch is built as bytes at once (geometries in formats/fgb_geometry.py,
properties below) and appended to a scratch file, on a thread of its own (Spill); at close
the header, the index (formats/packed_rtree.py) and the features in the index's order
(formats/permute.py, reading the scratch files in order a window at a time) make the file,
which becomes `out` by a rename where the storage allows (ScratchWriter.copy_out). The file is
laid out as GDAL's driver wrote it (header fields, column types, feature tables), so readers
see the same layer. Without the index, memory stays flat; with it, sizes and boxes stay on
disk while writing and the close holds 8 to 12 bytes a feature (10 million points: a worker
peaked at 377 MiB)."""
from __future__ import annotations

import os
import shutil
import struct
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from formats import fgb_geometry, packed_rtree
from formats.base import WGS84, Format, Option
from formats.binary import fixed, join, running_totals
from formats.geo import COPY_CHUNK, ScratchWriter, check_epsg, geometry_index, point_xy, reproject
from formats.permute import permute, trim_heap
from formats.values import date_strings, datetime_strings, string_bytes

GEO_TYPES = ("geo_shape", "geo_point_2d")
MAGIC = b"fgb\x03fgb\x01"
LAYER = "data"  # the layer name GDAL gave it (after the file it wrote, data.fgb)
# FlatGeobuf's ColumnType for each field type
COLUMN_TYPES = {"boolean": 2, "int": 7, "double": 10, "text": 11, "datetime": 13, "date": 13}
NUMBERS = {"int": "<i8", "double": "<f8", "boolean": "u1"}  # property value types of fixed size
RESIDENT = 64 << 20  # features up to this size are reordered through a memory map, more by formats/permute.py
CHUNK = 1 << 16  # boxes read at a time (a multiple of the index's node size)
BOX = 32  # bytes of a feature's box in the scratch file: four doubles
GATHER = 4096  # features copied into index order at a time (a few MB: the allocator reuses them)
# A feature's bytes before its geometry: size prefix, then the flatbuffer: root offset, vtable
# (geometry, properties), table (soffset, geometry, properties); the geometry block at 24.
FEATURE = np.dtype([("size", "<u4"), ("root", "<u4"), ("vtable_size", "<u2"), ("table_size", "<u2"),
                    ("geometry_at", "<u2"), ("properties_at", "<u2"), ("soffset", "<i4"), ("geometry", "<u4"),
                    ("properties", "<u4")])
BEFORE_GEOMETRY = FEATURE.itemsize - 4  # the flatbuffer's bytes before the geometry block (24)


class FlatGeobufWriter(ScratchWriter):
    def __init__(self, out, schema, fields, options):
        super().__init__(out, schema, fields, options)
        self.geo = geometry_index(self.fields)
        self.points = self.fields[self.geo].type == "geo_point_2d"
        self.attributes = [i for i, f in enumerate(self.fields) if f.type not in GEO_TYPES]
        names = self.column_names()
        self.attribute_types = [self.fields[i].type for i in self.attributes]
        self.columns = [(names[i], COLUMN_TYPES[self.fields[i].type]) for i in self.attributes]
        self.indexed = bool(options["spatial_index"])
        self.epsg = options["epsg"]
        check_epsg(self.epsg)
        self.spill = Spill(self.tmp / "features")
        self.threads.append(self.spill)  # closed before _finish, aborted with the writer
        self.count = 0  # features written
        self.sizes = self.tmp / "sizes"  # bytes of each feature written (uint32), in file order
        self.boxes = self.tmp / "boxes"  # each feature's bounds (4 doubles), in file order, for the index
        self.around: np.ndarray | None = None  # the extent of every feature with a geometry

    def _write(self, batch: pa.RecordBatch) -> None:
        blocks, bounds, present = self._geometry(batch.column(self.geo))
        batch = batch.select(self.attributes)  # the geometry is in `blocks`: not copied by the filter
        if self.indexed and not present.all():
            self.skipped += int((~present).sum())
            batch = batch.filter(pa.array(present))
        elif not present.all():  # kept without geometry: a null block
            blocks = fgb_geometry.Blocks.ordered([blocks], [np.flatnonzero(present)], len(present))
        if not batch.num_rows:
            return
        properties, properties_size = self._properties(batch)
        head = np.zeros(batch.num_rows, FEATURE)
        head["root"], head["vtable_size"], head["table_size"], head["properties_at"] = 12, 8, 12, 8
        head["soffset"], head["geometry"] = 8, BEFORE_GEOMETRY + fgb_geometry.TABLE - 16
        head["geometry_at"] = np.where(blocks.sizes > 0, 4, 0)
        head["properties"] = BEFORE_GEOMETRY - 20 + blocks.sizes
        head["size"] = BEFORE_GEOMETRY + blocks.sizes + 4 + properties_size
        sizes = head["size"] + 4
        self.spill.append([fixed(head), *blocks.pieces, fixed(properties_size.astype("<u4")), *properties],
                          int(sizes.sum()))
        self.count += len(sizes)
        if self.indexed:  # on disk: 4 bytes a feature, 40 MB at 10 million
            with open(self.sizes, "ab") as f:
                sizes.tofile(f)  # uint32, as FEATURE's size
        self._keep(bounds[present])

    def _keep(self, bounds: np.ndarray) -> None:
        """The bounds of features written: the extent, and each box for the index (on disk: 32
        bytes a feature, too much to hold for millions)."""
        if not len(bounds):
            return
        around = packed_rtree.extent(bounds)
        if self.around is not None:
            around[:2], around[2:] = np.minimum(around[:2], self.around[:2]), np.maximum(around[2:], self.around[2:])
        self.around = around
        if self.indexed:
            with open(self.boxes, "ab") as f:
                np.ascontiguousarray(bounds, "<f8").tofile(f)

    def _geometry(self, column: pa.Array) -> tuple[fgb_geometry.Blocks, np.ndarray, np.ndarray]:
        """(blocks of the records with a geometry; bounds of each record; which have one)."""
        if self.points:
            x, y = point_xy(column, self.epsg)
            present = np.isfinite(x) & np.isfinite(y)
            return fgb_geometry.point_blocks(x[present], y[present]), np.column_stack([x, y, x, y]), present
        if self.epsg == WGS84:
            return fgb_geometry.wkb_blocks(column)
        geoms = reproject(shapely.from_wkb(column.to_numpy(zero_copy_only=False)), self.epsg)
        present = ~shapely.is_missing(geoms) & ~shapely.is_empty(geoms)
        return fgb_geometry.blocks(geoms[present]), shapely.bounds(geoms), present

    def _properties(self, batch: pa.RecordBatch) -> tuple[list[pa.Array], np.ndarray]:
        """Each record's properties, as pieces to join (null: nothing) and the size of each:
        for each value not null, its column's number (uint16) and the value (little-endian
        numbers, one byte for booleans, text as uint32 length and UTF-8)."""
        pieces: list[pa.Array] = []
        sizes = np.zeros(batch.num_rows, np.int64)
        for number, (column, field_type) in enumerate(zip(batch.columns, self.attribute_types)):
            valid = column.is_valid().to_numpy(zero_copy_only=False)
            if field_type in NUMBERS:
                records = np.zeros(len(column), [("column", "<u2"), ("value", NUMBERS[field_type])])
                records["value"] = column.fill_null(False if field_type == "boolean" else 0).to_numpy(zero_copy_only=False)
                pieces.append(fixed(records, valid))
            else:
                text = _text(column, field_type, self.options["timezone"]).cast(pa.binary())
                records = np.zeros(len(column), [("column", "<u2"), ("length", "<u4")])
                records["length"] = np.diff(string_bytes(text)[1])
                pieces += [fixed(records, valid), text]
            records["column"] = number
            sizes += np.where(valid, records.dtype.itemsize + (0 if field_type in NUMBERS else records["length"]), 0)
        return pieces, sizes

    def _finish(self) -> None:
        header = self._header(self.count, self.around)
        path = self.tmp / "data.fgb"
        with open(path, "w+b") as f:  # read too: formats/permute.py reorders within it
            f.write(MAGIC)
            f.write(struct.pack("<I", len(header)))
            f.write(header)
            if self.indexed and self.count:
                self._indexed_features(f)
            else:
                with open(self.spill.path, "rb") as spill:
                    shutil.copyfileobj(spill, f, COPY_CHUNK)
        self.spill.path.unlink()
        if self.skipped:
            self.warnings.append(f"{self.skipped} record(s) without geometry skipped (spatial_index needs one)")
        self.copy_out(path)

    def _indexed_features(self, f: BinaryIO) -> None:
        """The index, then the features in its order. Boxes and features go into that order
        from their scratch files through formats/permute.py, which reads them in order a
        window at a time (a few features are taken from a memory map instead): what is held
        is 8 to 12 bytes a feature (its place in the order, its size in that order, the sort
        keys for a while), not the data."""
        count = self.count
        trim_heap()  # what the batches left in the C allocator's heaps, before the index's arrays
        order, rank = _hilbert_ranks(self.boxes, count, self.around)
        if os.path.getsize(self.spill.path) > RESIDENT:
            order = None  # only the memory map takes the features by their order: the sort keys go
        placed = np.empty(count, np.uint32)  # each feature's size, by its place
        for at, sizes in zip(range(0, count, CHUNK), _chunks(self.sizes, count, "<u4")):
            placed[rank[at: at + len(sizes)]] = sizes
        boxes = self.tmp / "boxes.sorted"
        with open(self.boxes, "rb") as source, open(boxes, "w+b") as target:
            permute(source, np.broadcast_to(np.uint32(BOX), count), rank, target.fileno(), 0, self.tmp)
        self.boxes.unlink()
        f.write(packed_rtree.upper_levels(np.concatenate([packed_rtree.group_boxes(b) for b in _boxes(boxes, count)]),
                                          count).view(np.uint8))
        done = 0
        for at, chunk in zip(range(0, count, CHUNK), _boxes(boxes, count)):
            lengths = placed[at: at + CHUNK].astype(np.uint64)
            f.write(packed_rtree.leaves(chunk, np.cumsum(lengths) - lengths + np.uint64(done)).view(np.uint8))
            done += int(lengths.sum())
        boxes.unlink()
        f.flush()
        if order is not None:
            _gather(f, self.spill.path, order, np.fromfile(self.sizes, "<u4"))
        else:
            with open(self.spill.path, "rb") as source:
                permute(source, placed, rank, f.fileno(), f.tell(), self.tmp)

    def _header(self, count: int, around: np.ndarray | None) -> bytes:
        """header.fbs's Header: name, envelope, geometry type, columns, feature count, index node
        size (0 without index) and CRS (EPSG code)."""
        fb = Flatbuffer()
        columns = [fb.table({1: ("B", kind)}, {0: fb.string(name)}) for name, kind in self.columns]
        refs = {0: fb.string(LAYER), 7: fb.tables(columns),
                10: fb.table({1: ("i", self.epsg)}, {0: fb.string("EPSG")})}
        if around is not None:
            refs[1] = fb.doubles(around)
        index_node_size = packed_rtree.NODE_SIZE if self.indexed and count else 0  # GDAL reads no index of nothing
        return fb.finish(fb.table({2: ("B", 1 if self.points else 0), 8: ("Q", count), 9: ("H", index_node_size)}, refs))


def _hilbert_ranks(path: Path, count: int, around: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(order, rank): the features along the Hilbert curve, from their boxes' file, and each
    feature's place in that order. Each feature's value and number are sorted as one 64-bit
    key, in place, and the order read off the keys' low halves into the same memory: 8 bytes
    a feature, not the 20 of an argsort and its indices."""
    if count >= 1 << 32:
        raise ValueError("a FlatGeobuf of 2**32 features or more")
    keys = np.empty(count, np.uint64)
    for at, chunk in zip(range(0, count, CHUNK), _boxes(path, count)):
        keys[at: at + len(chunk)] = packed_rtree.hilbert_values(chunk, around).astype(np.uint64) << np.uint64(32)
        keys[at: at + len(chunk)] |= np.arange(at, at + len(chunk), dtype=np.uint64)
    keys.sort()  # values tie-broken by feature number: the stable order
    halves = keys.view(np.uint32)  # little-endian: the number is each key's first half
    for at in range(0, count, CHUNK):
        end = min(at + CHUNK, count)
        halves[at: end] = halves[2 * at: 2 * end: 2].copy()
    order = halves[:count].view(np.int32) if count < 1 << 31 else halves[:count]
    rank = np.empty(count, order.dtype)
    for at in range(0, count, CHUNK):
        rank[order[at: at + CHUNK]] = np.arange(at, min(at + CHUNK, count), dtype=order.dtype)
    return order, rank


def _boxes(path: Path, count: int) -> Iterator[np.ndarray]:
    """The (n, 4) boxes of a file of them, CHUNK at a time."""
    for chunk in _chunks(path, 4 * count, "<f8", 4 * CHUNK):
        yield chunk.reshape(-1, 4)


def _chunks(path: Path, count: int, dtype: Any, step: int = CHUNK) -> Iterator[np.ndarray]:
    """The `count` values of a file of them, `step` at a time."""
    with open(path, "rb") as f:
        for at in range(0, count, step):
            yield np.fromfile(f, dtype, min(step, count - at))


def _gather(f: BinaryIO, path: Path, order: np.ndarray, sizes: np.ndarray) -> None:
    """The features of a small scratch file written in `order`: taken from a memory map, a few
    MB at a time (copied by Arrow's take; the allocator reuses the same few MB)."""
    starts = running_totals(sizes)
    with pa.memory_map(str(path)) as source:
        spilled = pa.LargeBinaryArray.from_buffers(pa.large_binary(), len(order),
                                                   [None, pa.py_buffer(starts), source.read_buffer()])
        for at in range(0, len(order), GATHER):
            taken = spilled.take(pa.array(order[at: at + GATHER]))
            offsets = np.frombuffer(taken.buffers()[1], np.int64, len(taken) + 1)
            f.write(memoryview(taken.buffers()[2])[offsets[0]: offsets[-1]])


class Spill:
    """The scratch file of features in the order they come, appended to on a thread of its own:
    joining a batch's pieces into features and writing them (both without the GIL) overlap the
    preparation of the next batch. One batch waits at most; an error is raised by the next
    append or by close."""

    def __init__(self, path: Path):
        self.path = path
        path.touch()
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="fgb-spill")
        self._pending: Future | None = None

    def append(self, pieces: list[pa.Array], length: int) -> None:
        """Append the features the pieces make, row by row (null pieces are nothing), `length` bytes."""
        self.wait()
        self._pending = self._thread.submit(self._append, pieces, length)

    def _append(self, pieces: list[pa.Array], length: int) -> None:
        features = pc.binary_join_element_wise(*pieces, b"", null_handling="replace", null_replacement=b"")
        with open(self.path, "ab") as f:
            f.write(memoryview(features.buffers()[2])[:length])

    def wait(self) -> None:
        """Wait for the batch being written; raise what writing it raised."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    close = wait  # before the file is read: every batch written

    def abort(self) -> None:
        self._thread.shutdown(wait=True, cancel_futures=True)


def _text(column: pa.Array, field_type: str, timezone: str) -> pa.Array:
    if field_type == "date":
        return join(date_strings(column).cast(pa.binary()), pa.scalar(b"T00:00:00"))
    if field_type == "datetime":
        return datetime_strings(column, timezone)
    return column


class Flatbuffer:
    """A small flatbuffer written front to back, for the header: each table is written after
    its vtable and before what it refers to, so every offset points forward as flatbuffers
    want. Objects are made first (string, doubles, tables, table), each returning a reference
    that a table written later takes; finish(root) lays them out."""

    def __init__(self):
        self.buf = bytearray(4)

    def _pad(self, align: int, at: int = 0) -> None:
        """Pad until the position, plus `at`, is a multiple of `align`."""
        self.buf.extend(b"\0" * (-(len(self.buf) + at) % align))

    def string(self, text: str) -> Callable[[], int]:
        def place() -> int:
            data = text.encode()
            self._pad(4)
            at = len(self.buf)
            self.buf += struct.pack("<I", len(data)) + data + b"\0"
            return at
        return place

    def doubles(self, values: np.ndarray) -> Callable[[], int]:
        def place() -> int:
            self._pad(8, 4)
            at = len(self.buf)
            self.buf += struct.pack(f"<I{len(values)}d", len(values), *values)
            return at
        return place

    def tables(self, items: list[Callable[[], int]]) -> Callable[[], int]:
        def place() -> int:
            self._pad(4)
            at = len(self.buf)
            self.buf += struct.pack(f"<I{len(items)}I", len(items), *([0] * len(items)))
            for k, item in enumerate(items):
                self._point(at + 4 + 4 * k, item())
            return at
        return place

    def table(self, scalars: dict[int, tuple[str, Any]], refs: dict[int, Callable[[], int]]) -> Callable[[], int]:
        """A table of scalar fields {slot: (struct format, value)} and references {slot: object}."""
        def place() -> int:
            by_size = sorted(scalars.items(), key=lambda item: -struct.calcsize(item[1][0]))  # keeps them aligned
            wide = [(slot, fmt, value) for slot, (fmt, value) in by_size if struct.calcsize(fmt) >= 4]
            narrow = [(slot, fmt, value) for slot, (fmt, value) in by_size if struct.calcsize(fmt) < 4]
            inline_fields = wide + [(slot, "I", 0) for slot in refs] + narrow  # references filled in below
            slots = max([*scalars, *refs]) + 1
            vtable = [0] * slots
            size = 4  # the table's offset to its vtable comes first
            for slot, fmt, _ in inline_fields:
                vtable[slot] = size
                size += struct.calcsize(fmt)
            self._pad(2)
            vt = len(self.buf)
            self.buf += struct.pack(f"<HH{slots}H", 4 + 2 * slots, size, *vtable)
            self._pad(8, 4)
            at = len(self.buf)
            self.buf += struct.pack("<i", at - vt)
            for slot, fmt, value in inline_fields:
                self.buf += struct.pack("<" + fmt, value)
            for slot, place_ref in refs.items():
                self._point(at + vtable[slot], place_ref())
            return at
        return place

    def _point(self, at: int, target: int) -> None:
        struct.pack_into("<I", self.buf, at, target - at)

    def finish(self, root: Callable[[], int]) -> bytes:
        self._point(0, root())
        return bytes(self.buf)


FORMAT = Format(
    reprojects=True,
    name="fgb",
    extension="fgb",
    media_type="application/flatgeobuf",
    writer=FlatGeobufWriter,
    aliases=("flatgeobuf",),
    binary=True,
    needs=frozenset({"geometry"}),
    options=(
        Option("spatial_index", bool, True,
               description="Write the spatial index; records without geometry are then skipped."),
    ),
    description="FlatGeobuf, with a packed Hilbert R-tree spatial index.",
)
