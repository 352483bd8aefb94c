"""Records of a file written in another order, in bounded memory: FlatGeobuf's features and
their boxes, spilled in the order they came, go out in the order of the index.

Reading a file of gigabytes in a random order through a memory map made the process's
resident memory grow by most of the file: each page fault maps a whole folio of the page
cache, tens of kilobytes, for a record of a few hundred bytes. Here the file is read twice in
order, a window at a time, with plain reads: the first pass moves each window's records to the
part of the output their new places fall in (a bucket of about a window's bytes), the second
reorders each bucket within itself. Memory is a few windows plus a few bytes a record."""
from __future__ import annotations

import ctypes
import ctypes.util
import os
from functools import cache
from typing import BinaryIO

import numpy as np
import pyarrow as pa

WINDOW = 16 << 20  # bytes read, or reordered, at a time
SCAN = 1 << 20  # records whose sizes are summed at a time


def permute(source: BinaryIO, sizes: np.ndarray, rank: np.ndarray, out: int, at: int, window: int | None = None) -> int:
    """Write the records of `source` (one after the other from where it stands, record i `sizes[i]`
    bytes) to the file descriptor `out` (open for reading and writing) from offset `at`, record
    i at place `rank[i]` of the new order (`rank` a permutation of 0…n-1). Returns the bytes
    written."""
    n, window = len(sizes), window or WINDOW
    if not n:
        return 0
    bucket, bounds = _buckets(sizes, rank, window)
    filled = bounds[:-1].copy()  # where each bucket's next record goes, from `at`
    done = 0
    # one buffer for every window read: a new one each time left the C allocator's heap grown
    space = np.empty(max(window, int(sizes.max()), int(np.diff(bounds).max())), np.uint8)
    for first, last in _windows(sizes, window):  # pass 1: each record into its bucket, in file order
        records = _read(source, sizes[first:last], space)
        by_bucket = np.argsort(bucket[first:last], kind="stable")
        grouped = records.take(pa.array(by_bucket))
        data = _data(grouped)
        lengths = np.bincount(bucket[first:last], weights=sizes[first:last], minlength=len(filled)).astype(np.int64)
        offset = 0
        for k in np.flatnonzero(lengths):
            _write_at(out, data[offset: offset + lengths[k]], at + filled[k])
            filled[k] += lengths[k]
            offset += lengths[k]
        done += int(lengths.sum())
        del records, grouped, data
        trim_heap()
    for k in range(len(bounds) - 1):  # pass 2: each bucket into order
        members = np.flatnonzero(bucket == k)  # in file order, as pass 1 put them
        if not len(members):
            continue
        start, length = int(bounds[k]), int(bounds[k + 1] - bounds[k])
        if os.preadv(out, [space[:length]], at + start) != length:
            raise OSError("the output ended early")
        records = _array(space[:length], sizes[members])
        _write_at(out, _data(records.take(pa.array(np.argsort(rank[members])))), at + start)
        del records
        trim_heap()
    return done


def trim_heap() -> None:
    """Give the C allocator's free memory back to the system. Each window's arrays are freed
    before the next, but glibc kept the freed memory in its heaps: a FlatGeobuf of 3 million
    points grew the process by 200 MiB of memory nobody used, which this gives back."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


@cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


def _buckets(sizes: np.ndarray, rank: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """(bucket of each record, in file order; byte bounds of the buckets in the output): the
    output cut into runs of about `window` bytes, a record in the run it starts in. About 10
    bytes a record at most, then 2."""
    by_rank = np.empty(len(sizes), np.uint32)
    by_rank[rank] = sizes
    of_rank = np.empty(len(sizes), np.int32)
    firsts: list[tuple[np.ndarray, np.ndarray]] = []  # (bucket, first byte) where a bucket begins
    total, last = 0, -1
    for first in range(0, len(sizes), SCAN):
        lengths = by_rank[first: first + SCAN].astype(np.int64)
        begins = np.cumsum(lengths) - lengths + total
        buckets = begins // window
        new = np.flatnonzero(np.diff(buckets, prepend=last))
        firsts.append((buckets[new], begins[new]))
        of_rank[first: first + SCAN] = buckets
        total, last = int(begins[-1] + lengths[-1]), int(buckets[-1])
    del by_rank
    bounds = np.full(last + 2, total, np.int64)
    for buckets, begins in firsts:
        bounds[buckets] = begins
    bounds = np.minimum.accumulate(bounds[::-1])[::-1]  # an empty bucket (a record longer than a window) ends where it starts
    bucket = np.empty(len(sizes), np.uint16 if last < 1 << 16 else np.int32)
    for first in range(0, len(sizes), SCAN):
        bucket[first: first + SCAN] = of_rank[rank[first: first + SCAN]]
    return bucket, bounds


def _windows(sizes: np.ndarray, window: int):
    """(first, last) record of consecutive runs of about `window` bytes (one record at least)."""
    first = 0
    while first < len(sizes):
        ends = np.cumsum(sizes[first: first + SCAN], dtype=np.int64)
        last = first + max(int(np.searchsorted(ends, window, side="right")), 1)
        yield first, last
        first = last


def _read(source: BinaryIO, sizes: np.ndarray, space: np.ndarray) -> pa.LargeBinaryArray:
    length = int(sizes.sum(dtype=np.int64))
    if source.readinto(memoryview(space[:length])) != length:
        raise OSError("the scratch file ended early")
    return _array(space[:length], sizes)


def _array(data: np.ndarray, sizes: np.ndarray) -> pa.LargeBinaryArray:
    offsets = np.zeros(len(sizes) + 1, np.int64)
    np.cumsum(sizes, out=offsets[1:])
    return pa.LargeBinaryArray.from_buffers(pa.large_binary(), len(sizes), [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _data(records: pa.LargeBinaryArray) -> memoryview:
    offsets = np.frombuffer(records.buffers()[1], np.int64, len(records) + 1, records.offset * 8)
    return memoryview(records.buffers()[2])[offsets[0]: offsets[-1]]


def _write_at(out: int, data: memoryview, position: int) -> None:
    while data:
        written = os.pwrite(out, data, position)
        data, position = data[written:], position + written
