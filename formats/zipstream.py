"""A zip archive written strictly forward, for containers such as XLSX whose large entries are
produced piece by piece and whose first bytes are only known at the end.

Deflate is ISA-L's (isal: zlib's format, about four times zlib's speed at level 1 for the
same size). An entry's bytes are deflated as they come into a `DeflatedSpool` (a temporary
file, with the running CRC-32 and sizes); a head may be put in front of it when it is
complete (deflated on its own and flushed to a byte boundary: two raw deflate streams chain,
and CRC-32s combine).
`ZipWriter` then writes each entry once, header first with its real sizes: no data
descriptors, no seeking back (so gzip and other forward-only outputs take it as it is), and
zip64 fields only where a size or offset needs them — readers such as Excel are fussier with
zip64 records they did not need.
"""
from __future__ import annotations

import struct
import tempfile
from dataclasses import dataclass, field
from typing import BinaryIO, Sequence

import numpy as np
from isal import isal_zlib

ZIP64_LIMIT = 0xFFFFFFFF  # sizes and offsets from here on need zip64 fields
IN_ZIP64 = 0xFFFFFFFF  # what a fixed field holds when its value is in the zip64 field
DEFLATED = 8  # the zip method number of deflate
DOS_DATE = (1 << 5) | 1  # 1980-01-01, time 00:00: the same bytes for the same content
CRC32_POLYNOMIAL = 0xEDB88320  # reflected


def _gf2_times(matrix: list[int], vector: int) -> int:
    total, row = 0, 0
    while vector:
        if vector & 1:
            total ^= matrix[row]
        vector >>= 1
        row += 1
    return total


def _gf2_square(matrix: list[int]) -> list[int]:
    return [_gf2_times(matrix, row) for row in matrix]


def crc32_combine(crc1: int, crc2: int, length2: int) -> int:
    """The CRC-32 of A + B from crc32(A), crc32(B) and len(B): zlib's crc32_combine, which
    Python's zlib does not expose. Applies len(B) zero bytes to crc1 by repeated squaring of
    the one-zero-bit operator over GF(2)."""
    if length2 <= 0 or not crc1:  # zero bytes do not change a CRC of 0: no need to apply them
        return crc1 ^ crc2
    odd = [CRC32_POLYNOMIAL] + [1 << n for n in range(31)]  # one zero bit
    even = _gf2_square(odd)  # two zero bits
    odd = _gf2_square(even)  # four zero bits
    while True:
        even = _gf2_square(odd)  # first pass: one zero byte
        if length2 & 1:
            crc1 = _gf2_times(even, crc1)
        length2 >>= 1
        if not length2:
            break
        odd = _gf2_square(even)
        if length2 & 1:
            crc1 = _gf2_times(odd, crc1)
        length2 >>= 1
        if not length2:
            break
    return crc1 ^ crc2


def _compressor(level: int) -> "isal_zlib.Compress":
    return isal_zlib.compressobj(level, isal_zlib.DEFLATED, -15)  # raw deflate, as zip holds it


@dataclass
class Part:
    """Deflated bytes in a spool's file (its first `compressed` bytes), flushed to a byte
    boundary so that another part's deflate stream may follow: `size` bytes, CRC-32 `crc`."""

    crc: int
    size: int
    file: BinaryIO
    compressed: int


@dataclass
class Entry:
    """A deflated entry ready to write: its first deflated bytes, then the parts read from
    their files, one after the other."""

    name: str
    crc: int
    size: int
    deflated_head: bytes
    parts: list[Part] = field(default_factory=list)

    @property
    def compressed_size(self) -> int:
        return len(self.deflated_head) + sum(part.compressed for part in self.parts)

    @classmethod
    def of(cls, name: str, data: bytes, level: int) -> "Entry":
        compressor = _compressor(level)
        return cls(name, isal_zlib.crc32(data), len(data), compressor.compress(data) + compressor.flush())


class DeflatedSpool:
    """An entry's bytes, deflated into a temporary file as they are written."""

    def __init__(self, level: int):
        self.level = level
        self.file = tempfile.TemporaryFile(prefix="exportd-zip-")
        self.compressor = _compressor(level)
        self.crc = 0
        self.size = 0

    def write(self, data: bytes | memoryview | np.ndarray) -> None:
        self.crc = isal_zlib.crc32(data, self.crc)
        self.size += memoryview(data).nbytes
        self.file.write(self.compressor.compress(data))

    def part(self) -> Part:
        """What was written, as a part that another may follow in its entry."""
        self.file.write(self.compressor.flush(isal_zlib.Z_SYNC_FLUSH))
        return Part(self.crc, self.size, self.file, self.file.tell())

    def entry(self, name: str, head: bytes = b"", before: Sequence[Part] = ()) -> Entry:
        """The finished entry: `head`, then the parts `before` (of other spools), then what was
        written here. The spools must stay open until the entry is added to the zip."""
        self.file.write(self.compressor.flush())
        head_compressor = _compressor(self.level)
        deflated_head = head_compressor.compress(head) + head_compressor.flush(isal_zlib.Z_SYNC_FLUSH)
        parts = [*before, Part(self.crc, self.size, self.file, self.file.tell())]
        crc, size = isal_zlib.crc32(head), len(head)
        for part in parts:
            crc, size = crc32_combine(crc, part.crc, part.size), size + part.size
        return Entry(name, crc, size, deflated_head, parts)

    def close(self) -> None:
        self.file.close()


@dataclass
class _Written:
    name: bytes
    crc: int
    size: int
    compressed_size: int
    offset: int

    @property
    def zip64(self) -> bool:
        return self.size >= ZIP64_LIMIT or self.compressed_size >= ZIP64_LIMIT


def _copy_exactly(src: BinaryIO, dst: BinaryIO, size: int) -> None:
    while size > 0:
        chunk = src.read(min(size, 1 << 20))
        if not chunk:
            raise EOFError("a deflated part is shorter than it said")
        dst.write(chunk)
        size -= len(chunk)


class ZipWriter:
    """Entries written one after the other, then the central directory on close."""

    def __init__(self, out: BinaryIO):
        self.out = out
        self.offset = 0
        self.written: list[_Written] = []

    def _write(self, data: bytes) -> None:
        self.out.write(data)
        self.offset += len(data)

    def add(self, entry: Entry) -> None:
        w = _Written(entry.name.encode(), entry.crc, entry.size, entry.compressed_size, self.offset)
        # a zip64 local header holds both sizes in its extra field, 0xFFFFFFFF in the fixed ones
        extra = struct.pack("<HHQQ", 1, 16, w.size, w.compressed_size) if w.zip64 else b""
        sizes = (IN_ZIP64, IN_ZIP64) if w.zip64 else (w.compressed_size, w.size)
        self._write(struct.pack("<IHHHHHIIIHH", 0x04034B50, 45 if w.zip64 else 20, 0, DEFLATED, 0, DOS_DATE,
                                w.crc, *sizes, len(w.name), len(extra)) + w.name + extra)
        self._write(entry.deflated_head)
        for part in entry.parts:
            part.file.seek(0)
            _copy_exactly(part.file, self.out, part.compressed)
            self.offset += part.compressed
        self.written.append(w)

    def close(self) -> None:
        start = self.offset
        for w in self.written:
            # the central zip64 field holds the values whose fixed field reads 0xFFFFFFFF, in order
            big = [w.size, w.compressed_size] if w.zip64 else []
            big += [w.offset] if w.offset >= ZIP64_LIMIT else []
            extra = struct.pack(f"<HH{len(big)}Q", 1, 8 * len(big), *big) if big else b""
            sizes = (IN_ZIP64, IN_ZIP64) if w.zip64 else (w.compressed_size, w.size)
            version = 45 if big else 20
            self._write(struct.pack(
                "<IHHHHHHIIIHHHHHII", 0x02014B50, version, version, 0, DEFLATED, 0, DOS_DATE, w.crc, *sizes,
                len(w.name), len(extra), 0, 0, 0, 0, IN_ZIP64 if w.offset >= ZIP64_LIMIT else w.offset) + w.name + extra)
        size, count = self.offset - start, len(self.written)
        if start >= ZIP64_LIMIT or size >= ZIP64_LIMIT or count >= 0xFFFF:
            end64 = self.offset
            self._write(struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, count, count, size, start))
            self._write(struct.pack("<IIQI", 0x07064B50, 0, end64, 1))
            size, start, count = min(size, IN_ZIP64), min(start, IN_ZIP64), min(count, 0xFFFF)
        self._write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, count, count, size, start, 0))
