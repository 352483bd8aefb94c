"""A shapefile's DBF table, written here as GDAL's shapefile driver wrote it and then narrowed
(RESIZE=YES): every character field and every whole-number field as wide as its widest value.
GDAL wrote 10 µs a record (a 1M-point export took 12 s, 10 of them in GDAL's DBF); here a
batch's cells are made with pyarrow.compute and placed with numpy.

DBF (dBase III) as shapelib writes it: a 32-byte header (version 3, today's date, record
count, header length, record length), one 32-byte descriptor per field (name, type, width at
byte 16, decimals at 17), 0x0D, then fixed-width records (a deletion flag byte, a space, then
each field), then 0x1A. Cells as GDAL writes them:

- C (text): UTF-8, left-aligned, padded with spaces; null is blank, as is "" (readers give
  null for both). Trailing spaces are padding to a reader, so a field is as wide as its
  widest value without them. At most 254 bytes (the caller cuts longer text).
- N (int64): right-aligned digits; null is all `*`.
- N 24.15 (double): `%24.15f`; null is all `*`. A value that does not fit in 24 characters
  so (from 10^8 up, -10^7 down) is written `%24.15e`, which readers parse: GDAL cut it to 24
  characters, another number, and warned.
- L (boolean): T or F; null `?`. D (date): YYYYMMDD; null 00000000.

The final widths are known only at the end, so each batch's cells go to a scratch file as a
block (each cell's length, then the cells, field by field); at the end the records are laid
out at the final widths from the blocks, a few MiB at a time, in runs of blocks that threads
write side by side (formats/shapefile.py deflates them into one zip entry)."""
from __future__ import annotations

import struct
import time
from functools import cache
from pathlib import Path
from typing import BinaryIO, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from formats.values import string_bytes

HEADER = 32
DESCRIPTOR = 32
END_OF_HEADER, END_OF_FILE = b"\x0d", b"\x1a"
MAX_TEXT = 254  # bytes in a C field
MAX_RECORD = 65535
DOUBLE_WIDTH, DOUBLE_DECIMALS = 24, 15
FITS_FIXED = 1e8  # |value| below which %24.15f fits 24 characters
BLOCK_BYTES = 16 << 20  # records re-laid at a time, in bytes
SPACE, STAR, ZERO = ord(" "), ord("*"), ord("0")


class Field(NamedTuple):
    name: str
    kind: str  # C, N, L or D
    decimals: int
    right: bool  # right-aligned (numbers)
    least: int  # the narrowest it may be


def field_of(name: str, arrow_type: pa.DataType) -> Field:
    if pa.types.is_string(arrow_type):
        return Field(name, "C", 0, False, 1)
    if pa.types.is_integer(arrow_type):
        return Field(name, "N", 0, True, 1)
    if pa.types.is_floating(arrow_type):
        return Field(name, "N", DOUBLE_DECIMALS, True, DOUBLE_WIDTH)
    if pa.types.is_boolean(arrow_type):
        return Field(name, "L", 0, False, 1)
    if pa.types.is_date(arrow_type):
        return Field(name, "D", 0, False, 8)
    raise TypeError(f"no DBF field for Arrow type {arrow_type}")


def cells(column: pa.Array, field: Field) -> pa.Array:
    """Each value of `column` as the text of its cell, unpadded, never null (a null number
    is one `*`, spread over the whole cell by `copy`)."""
    if field.kind == "C":
        return pc.utf8_rtrim(column, characters=" ").fill_null("")
    if field.kind == "L":
        return pc.if_else(column, "T", "F").fill_null("?")
    if field.kind == "D":
        return pc.replace_substring(column.cast(pa.string()), "-", "").fill_null("00000000")
    if field.decimals:
        return double_cells(column)
    return column.cast(pa.string()).fill_null("*")


def double_cells(column: pa.Array) -> pa.Array:
    """Doubles as C's `%24.15f` writes them (right-aligned in 24 characters), all `*` where
    null; a value that would not fit in 24 characters so (from 10^8 up, 10^7 down) as
    `%24.15e`, and nan, inf. The digits are laid out with numpy: the whole part, then the
    fraction times 10^15, rounded, computed in long double; where that product is within 10^-3
    of a tie, which long double cannot settle, Python formats the value (as exactly as printf)."""
    values = np.asarray(column.to_numpy(zero_copy_only=False), np.float64)  # nulls NaN, starred below
    negative = np.signbit(values)
    size = np.abs(values)
    fits = np.isfinite(values) & (size < np.where(negative, FITS_FIXED / 10, FITS_FIXED))
    size = np.where(fits, size, 0.0)
    whole = np.floor(size)
    scaled = (size - whole).astype(np.longdouble) * np.longdouble(10**DOUBLE_DECIMALS)
    fraction_rounded = np.rint(scaled)
    fraction = fraction_rounded.astype(np.int64)
    carry = fraction == 10**DOUBLE_DECIMALS
    whole, fraction = whole.astype(np.int64) + carry, np.where(carry, 0, fraction)
    # 24 bytes a value, as six 4-byte words: the whole part's 8 places, then the point and the
    # fraction's 15 digits (written as 16, the first a 0 the point replaces)
    text = np.empty((len(values), DOUBLE_WIDTH), np.uint8)
    words, four = text.view(np.uint32), _digits(4).view(np.uint32).reshape(-1)
    words[:, 0], words[:, 1] = four[whole // 10**4 % 10**4], four[whole % 10**4]
    for k in range(4):
        words[:, 2 + k] = four[fraction // 10 ** (12 - 4 * k) % 10**4]
    text[:, DOUBLE_WIDTH - DOUBLE_DECIMALS - 1] = ord(".")
    digits = np.minimum(np.searchsorted(TENS, whole, side="right"), 7)  # of the whole part, less one
    head = text.view(np.uint64)[:, 0]  # its 8 places: leading zeros become spaces, and a sign
    head &= _KEEP[digits]
    head |= np.where(negative, _NEGATIVE[digits], _BLANK[digits])
    valid = column.is_valid().to_numpy(zero_copy_only=False)
    fits &= whole < np.where(negative, FITS_FIXED / 10, FITS_FIXED)  # not carried past them
    tie = np.abs(scaled - fraction_rounded) > 0.5 - 1e-3
    for i in np.flatnonzero((~fits | tie) & valid):
        text[i] = np.frombuffer(f"{values[i]:{DOUBLE_WIDTH}.{DOUBLE_DECIMALS}{'f' if fits[i] else 'e'}}".encode(), np.uint8)
    text[~valid] = STAR
    offsets = np.arange(0, DOUBLE_WIDTH * (len(values) + 1), DOUBLE_WIDTH, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), len(values), [None, pa.py_buffer(offsets), pa.py_buffer(text)])


TENS = 10 ** np.arange(1, 9)
# by the digits of a whole part less one (0-7): the 8 places' bytes kept (its digits), the
# spaces before them, and the spaces and a minus sign
_KEEP = np.array([int.from_bytes(bytes(7 - d) + b"\xff" * (d + 1), "little") for d in range(8)], np.uint64)
_BLANK = np.array([int.from_bytes(b" " * (7 - d) + bytes(d + 1), "little") for d in range(8)], np.uint64)
_NEGATIVE = np.array([int.from_bytes(b" " * (6 - d) + b"-" * (d < 7) + bytes(d + 1), "little") for d in range(8)],
                     np.uint64)


@cache
def _digits(n: int) -> np.ndarray:
    """The n ASCII digits of each number below 10**n, zero-padded: ((10**n), n) uint8."""
    return np.frombuffer("".join(f"{i:0{n}d}" for i in range(10**n)).encode(), np.uint8).reshape(-1, n)


class _Block(NamedTuple):
    at: int  # where in the scratch file
    rows: int
    sizes: tuple[int, ...]  # bytes of each field's cells


class DbfWriter:
    """The DBF of `fields`, written a batch at a time to the scratch file `path`; `copy`
    writes the DBF itself. The scratch file holds each batch as a block: for each field, the
    length of each cell (a byte), then the cells one after the other."""

    def __init__(self, path: Path, fields: list[Field]):
        self.path, self.fields = path, fields
        self.widths = [f.least for f in fields]
        self.records = 0
        self.blocks: list[_Block] = []
        self._size = 0
        path.write_bytes(b"")

    def write(self, columns: list[pa.Array]) -> None:
        """Append a record for each row of the attribute `columns` (one per field, in order)."""
        n = len(columns[0])
        if not n:
            return
        parts, sizes, widths = [], [], []
        for column, field in zip(columns, self.fields):
            data, offsets = string_bytes(cells(column, field))
            lengths = np.diff(offsets)
            widths.append(max(field.least, int(lengths.max())))
            parts += [lengths.astype(np.uint8), data]
            sizes.append(len(data))
        if 1 + sum(max(w, old) for w, old in zip(widths, self.widths)) > MAX_RECORD:
            raise ValueError(f"a DBF record cannot pass {MAX_RECORD} bytes: too many text fields")
        with open(self.path, "ab") as f:
            for part in parts:
                f.write(memoryview(part))
        self.blocks.append(_Block(self._size, n, tuple(sizes)))
        self._size += n * len(self.fields) + sum(sizes)
        self.records += n
        self.widths = [max(w, old) for w, old in zip(widths, self.widths)]

    def copy(self, dst: BinaryIO) -> None:
        """Write the whole DBF to `dst`: header, descriptors, records at the final widths, end."""
        dst.write(self.head())
        self.copy_records(self.blocks, dst, last=True)

    def head(self) -> bytes:
        """The header and field descriptors, at the final widths."""
        today = time.localtime()
        head = [struct.pack("<4BIHH20x", 3, today.tm_year - 1900, today.tm_mon, today.tm_mday, self.records,
                            HEADER + DESCRIPTOR * len(self.fields) + 1, 1 + sum(self.widths))]
        for field, width in zip(self.fields, self.widths):
            head.append(struct.pack("<11sc4xBB14x", field.name.encode(), field.kind.encode(), width, field.decimals))
        return b"".join(head) + END_OF_HEADER

    def groups(self, n: int) -> list[list[_Block]]:
        """The blocks in at most `n` runs of about as many records each (one, maybe empty, at
        least), for the records to be written by several threads, each run after the last."""
        groups: list[list[_Block]] = [[]]
        for block in self.blocks:
            if len(groups) < n and groups[-1] and sum(b.rows for b in groups[-1]) >= self.records / n:
                groups.append([])
            groups[-1].append(block)
        return groups

    def copy_records(self, blocks: list[_Block], dst: BinaryIO, last: bool) -> None:
        """Write the records of `blocks` at the final widths to `dst`, then the file's end if
        they are the `last`."""
        record = 1 + sum(self.widths)
        with open(self.path, "rb") as src:
            for block in blocks:
                src.seek(block.at)
                cells = [(np.frombuffer(src.read(block.rows), np.uint8), np.frombuffer(src.read(size), np.uint8))
                         for size in block.sizes]
                per_step = max(1, BLOCK_BYTES // record)
                for first in range(0, block.rows, per_step):
                    dst.write(memoryview(self._records(cells, first, min(block.rows, first + per_step), record)))
        if last:
            dst.write(END_OF_FILE)

    def _records(self, cells: list[tuple[np.ndarray, np.ndarray]], first: int, last: int, record: int) -> np.ndarray:
        """Records first..last of a block at the final widths, as bytes."""
        out = np.full((last - first, record), SPACE, np.uint8)
        start = 1  # after the deletion flag
        for field, width, (lengths, data) in zip(self.fields, self.widths, cells):
            lengths = lengths.astype(np.int64)
            ends = np.cumsum(lengths)
            lengths, ends = lengths[first:last], ends[first:last]
            begin = int(ends[0] - lengths[0]) if len(ends) else 0
            values = data[begin:int(ends[-1]) if len(ends) else 0]
            if (lengths == width).all():  # every cell full: a plain copy
                out[:, start:start + width] = values.reshape(-1, width)
            else:
                cell = np.arange(last - first) * record + start + (width - lengths if field.right else 0)
                out.reshape(-1)[np.repeat(cell - (ends - lengths - begin), lengths) + np.arange(len(values))] = values
                if field.right:  # a null number, one `*`: over the whole cell
                    null = out[:, start + width - 1] == STAR
                    out[null, start:start + width] = STAR
            start += width
        return out.reshape(-1)
