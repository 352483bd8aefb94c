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
import tempfile
from functools import cache
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa

from formats.binary import running_totals

WINDOW = 16 << 20  # bytes read, or reordered, at a time
SCAN = 1 << 20  # records whose sizes are summed at a time
WINDOW_RECORDS = 1 << 16  # records first looked at for a window (more while they fill less)


def permute(source: BinaryIO, placed: np.ndarray, rank: np.ndarray, out: int, at: int, scratch: Path,
            window: int | None = None) -> int:
    """Write the records of `source` (one after the other from where it stands) to the file
    descriptor `out` (open for reading and writing) from offset `at`, record i at place
    `rank[i]` of the new order (`rank` a permutation of 0…n-1), the record at place p being
    `placed[p]` bytes long: the sizes in the new order, which the caller has (a second array of
    them, or the inverse permutation, would take as much memory again). A scratch file in the
    directory `scratch` holds each bucket's places meanwhile (8 bytes a record). Returns the
    bytes written."""
    n, window = len(rank), window or WINDOW
    if not n:
        return 0
    first_place, bounds = _buckets(placed, window)
    filled = bounds[:-1].copy()  # where each bucket's next record goes, from `at`
    counted = first_place[:-1].copy()  # where each bucket's next place goes, in places
    done = 0
    # one buffer for every window read: a new one each time left the C allocator's heap grown
    space = np.empty(max(window, int(placed.max()), int(np.diff(bounds).max())), np.uint8)
    with tempfile.TemporaryFile(dir=scratch, prefix="places-") as places_file:
        places_out = places_file.fileno()
        for first, last in _windows(placed, rank, window):  # pass 1: each record into its bucket, in file order
            places = rank[first:last]
            sizes = placed[places]
            buckets = np.searchsorted(first_place, places, side="right") - 1
            by_bucket = np.argsort(buckets, kind="stable")
            grouped = _read(source, sizes, space).take(pa.array(by_bucket))
            data, places = _data(grouped), places[by_bucket].astype("<i8")
            lengths = np.bincount(buckets, weights=sizes, minlength=len(filled)).astype(np.int64)
            counts = np.bincount(buckets, minlength=len(filled))
            offset, count = 0, 0
            for k in np.flatnonzero(counts):
                _write_at(out, data[offset: offset + lengths[k]], at + filled[k])
                _write_at(places_out, memoryview(places[count: count + counts[k]]).cast("B"), 8 * counted[k])
                filled[k], counted[k] = filled[k] + lengths[k], counted[k] + counts[k]
                offset, count = offset + lengths[k], count + counts[k]
            done += int(lengths.sum())
            del grouped, data
            trim_heap()
        for k in range(len(bounds) - 1):  # pass 2: each bucket into order
            members = int(first_place[k + 1] - first_place[k])
            if not members:
                continue
            places = np.empty(members, "<i8")  # of the bucket's records, in the order pass 1 wrote them
            _read_at(places_out, places, 8 * int(first_place[k]))
            start, length = int(bounds[k]), int(bounds[k + 1] - bounds[k])
            _read_at(out, space[:length], at + start)
            records = _array(space[:length], placed[places])
            _write_at(out, _data(records.take(pa.array(np.argsort(places)))), at + start)
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


def _buckets(placed: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """(first place of each bucket and one past the last; byte bounds of the buckets in the
    output): the output cut into runs of about `window` bytes, a record in the run it starts
    in. A bucket may be empty (a record longer than a window before it)."""
    firsts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (bucket, first place, first byte) where one begins
    total, last = 0, -1
    for first in range(0, len(placed), SCAN):
        lengths = placed[first: first + SCAN].astype(np.int64)
        begins = np.cumsum(lengths) - lengths + total
        buckets = begins // window
        new = np.flatnonzero(np.diff(buckets, prepend=last))
        firsts.append((buckets[new], new + first, begins[new]))
        total, last = int(begins[-1] + lengths[-1]), int(buckets[-1])
    first_place = np.full(last + 2, len(placed), np.int64)
    bounds = np.full(last + 2, total, np.int64)
    for buckets, places, begins in firsts:
        first_place[buckets], bounds[buckets] = places, begins
    # an empty bucket starts where the next one does
    return np.minimum.accumulate(first_place[::-1])[::-1], np.minimum.accumulate(bounds[::-1])[::-1]


def _windows(placed: np.ndarray, rank: np.ndarray, window: int):
    """(first, last) record, in file order, of consecutive runs of about `window` bytes (one
    record at least)."""
    first = 0
    while first < len(rank):
        scan = WINDOW_RECORDS
        while True:  # sizes summed over enough records to fill the window
            ends = np.cumsum(placed[rank[first: first + scan]], dtype=np.int64)
            if ends[-1] > window or first + scan >= len(rank):
                break
            scan *= 4
        last = first + max(int(np.searchsorted(ends, window, side="right")), 1)
        yield first, last
        first = last


def _read(source: BinaryIO, sizes: np.ndarray, space: np.ndarray) -> pa.LargeBinaryArray:
    length = int(sizes.sum(dtype=np.int64))
    if source.readinto(memoryview(space[:length])) != length:
        raise OSError("the scratch file ended early")
    return _array(space[:length], sizes)


def _read_at(fd: int, into: np.ndarray, position: int) -> None:
    view = memoryview(into).cast("B")
    while view:
        got = os.preadv(fd, [view], position)
        if not got:
            raise OSError("a scratch file ended early")
        view, position = view[got:], position + got


def _array(data: np.ndarray, sizes: np.ndarray) -> pa.LargeBinaryArray:
    offsets = running_totals(sizes)
    return pa.LargeBinaryArray.from_buffers(pa.large_binary(), len(sizes), [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _data(records: pa.LargeBinaryArray) -> memoryview:
    offsets = np.frombuffer(records.buffers()[1], np.int64, len(records) + 1, records.offset * 8)
    return memoryview(records.buffers()[2])[offsets[0]: offsets[-1]]


def _write_at(out: int, data: memoryview, position: int) -> None:
    while data:
        written = os.pwrite(out, data, position)
        data, position = data[written:], position + written
