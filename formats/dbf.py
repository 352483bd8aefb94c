"""The DBF table of a shapefile copied with its fields narrowed to the data: every character
field and every whole-number field as wide as its widest value, as GDAL's RESIZE=YES leaves
them, but done with numpy over blocks of records while the file is copied (into the zip).
GDAL's RESIZE rewrites the file record by record once per field: 7 s of a 9.5 s export of
100,000 points; this is one read to measure and one to copy.

DBF (dBase III) as shapelib writes it: a 32-byte header (record count, header length, record
length), one 32-byte descriptor per field (name, type, width at byte 16, decimals at 17), 0x0D,
then fixed-width records (a deletion flag byte, then each field), then 0x1A. Character fields
are left-aligned and padded with spaces; numbers right-aligned, padded with spaces, and a
null number is all `*`.
"""
from __future__ import annotations

import struct
from typing import BinaryIO, Iterator

import numpy as np

HEADER = 32
DESCRIPTOR = 32
BLOCK_BYTES = 16 << 20  # records read at a time, in bytes
SPACE, STAR = ord(" "), ord("*")


def _blocks(src: BinaryIO, start: int, record_length: int, count: int) -> Iterator[np.ndarray]:
    """The records as (rows, record_length) uint8 blocks."""
    src.seek(start)
    per_block = max(1, BLOCK_BYTES // record_length)
    for first in range(0, count, per_block):
        rows = min(per_block, count - first)
        data = src.read(rows * record_length)
        yield np.frombuffer(data, np.uint8).reshape(rows, record_length)


def copy_narrowed(src: BinaryIO, dst: BinaryIO) -> None:
    """Copy the DBF in `src` (seekable) to `dst` with its C fields and its N fields without
    decimals narrowed to their widest value (at least one character)."""
    head = src.read(HEADER)
    count, header_length, record_length = struct.unpack("<IHH", head[4:12])
    descriptors = bytearray(src.read(header_length - HEADER))
    fields = []  # (descriptor offset, first byte in the record, width, type, decimals)
    position = 1  # the deletion flag
    for at in range(0, len(descriptors) - 1, DESCRIPTOR):
        if descriptors[at] == 0x0D:
            break
        width = descriptors[at + 16]
        fields.append((at, position, width, chr(descriptors[at + 11]), descriptors[at + 17]))
        position += width
    used_text = np.zeros(record_length, bool)  # a byte column some record has a non-space in
    used_number = np.zeros(record_length, bool)  # … a non-space, non-`*` in
    for block in _blocks(src, header_length, record_length, count):
        not_space = block != SPACE
        used_text |= not_space.any(axis=0)
        used_number |= (not_space & (block != STAR)).any(axis=0)
    keep = np.ones(record_length, bool)
    for at, first, width, kind, decimals in fields:
        if kind == "C":
            used = np.flatnonzero(used_text[first:first + width])
            narrow = int(used[-1]) + 1 if len(used) else 1
            keep[first + narrow:first + width] = False
        elif kind == "N" and decimals == 0:
            used = np.flatnonzero(used_number[first:first + width])
            narrow = width - int(used[0]) if len(used) else 1
            keep[first:first + width - narrow] = False
        else:
            continue
        descriptors[at + 16] = narrow
    new_length = int(keep.sum())
    dst.write(head[:10] + struct.pack("<H", new_length) + head[12:])
    dst.write(descriptors)
    columns = np.flatnonzero(keep)
    for block in _blocks(src, header_length, record_length, count):
        dst.write(block[:, columns].tobytes())
    dst.write(src.read())  # the end-of-file marker
