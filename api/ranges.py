"""Range requests on stored files, as RFC 9110 (sections 13.1.5, 14.1, 14.2, 14.6) has them:
which byte ranges a `Range` header asks for, whether `If-Range` lets them be served, and the
framing of a multipart/byteranges body.

What is ignored (the whole file is served, 200) and what is refused (416):
- a unit other than `bytes`, or a header that is not a valid ranges-specifier (`bytes=abc`,
  `bytes=5-2`, `bytes=1-2-3`): ignored, which RFC 9110 requires of unknown units and allows
  for invalid ones, and which is what a server without range support would do;
- more than MAX_RANGES ranges, or ranges that overlap: ignored, as RFC 9110 allows, so that
  a short header cannot make the service send a file many times over;
- a valid header none of whose ranges is satisfiable (`bytes=-0`, a first byte at or past the
  end): refused;
- ranges past the end are clipped to it (`bytes=10-999999` on a 100-byte file is 10-99), and
  unsatisfiable ranges among satisfiable ones are dropped.
"""
from __future__ import annotations

import re
import secrets
from datetime import datetime

MAX_RANGES = 16
_INT_RANGE = re.compile(r"([0-9]+)-([0-9]*)")
_SUFFIX_RANGE = re.compile(r"-([0-9]+)")
_HUGE = 1 << 63  # any position with more digits than a size can have lies past the end


class Unsatisfiable(Exception):
    """The Range header is valid but asks for nothing within the file: a 416."""


def requested(header: str | None, size: int) -> list[tuple[int, int]] | None:
    """The [start, stop) byte ranges `header` asks for in a file of `size` bytes, in the order
    asked; None when the whole file is to be served (no header, or one that is ignored, as the
    module says); Unsatisfiable when none of its ranges is within the file."""
    if header is None:
        return None
    unit, equals, spec = header.partition("=")
    if not equals or unit.lower() != "bytes":  # no space around "=" in the grammar
        return None
    specs = [s.strip() for s in spec.split(",") if s.strip()]  # a list may have empty elements
    if not specs or len(specs) > MAX_RANGES:
        return None
    ranges: list[tuple[int, int]] = []
    empty_whole = False
    for s in specs:
        if m := _INT_RANGE.fullmatch(s):
            first, last = _position(m[1]), _position(m[2]) if m[2] else None
            if last is not None and last < first:
                return None  # an invalid range makes the whole header invalid
            if first < size:
                ranges.append((first, size if last is None else min(last + 1, size)))
        elif m := _SUFFIX_RANGE.fullmatch(s):
            length = _position(m[1])
            if length and size:
                ranges.append((max(0, size - length), size))
            elif length:  # satisfiable on an empty file, but no Content-Range can say so
                empty_whole = True
        else:
            return None
    if not ranges:
        if empty_whole:
            return None
        raise Unsatisfiable(f"no range asked for is within the file's {size} bytes")
    ordered = sorted(ranges)
    if any(later[0] < earlier[1] for earlier, later in zip(ordered, ordered[1:])):
        return None  # overlapping
    return ranges


def _position(digits: str) -> int:
    return int(digits) if len(digits) <= 18 else _HUGE


def if_range_holds(value: str | None, date: datetime | None, etag: str, modified: datetime) -> bool:
    """Whether the ranges may be served under `If-Range: value` (`date` is that value parsed as
    an HTTP-date, None if it is not one), for a file whose strong ETag is `etag` (unquoted) and
    which was last modified at `modified`. An entity-tag must be strong and equal; a date must
    be exactly the Last-Modified, which is a strong validator because a stored file never
    changes under its key. Anything else (a weak tag, a malformed value) serves the whole file."""
    if value is None:
        return True
    value = value.strip()
    if value.startswith('"'):
        return len(value) > 1 and value.endswith('"') and value[1:-1] == etag
    if value.startswith("W/"):
        return False
    return date is not None and int(date.timestamp()) == int(modified.timestamp())


def multipart(ranges: list[tuple[int, int]], size: int, media_type: str) -> tuple[str, list[bytes], bytes]:
    """The boundary of a multipart/byteranges body of `ranges`, the bytes that go before each
    range's data, and those that end the body."""
    boundary = secrets.token_hex(16)
    heads = []
    for i, (start, stop) in enumerate(ranges):
        head = f"--{boundary}\r\nContent-Type: {media_type}\r\nContent-Range: bytes {start}-{stop - 1}/{size}\r\n\r\n"
        heads.append((b"\r\n" if i else b"") + head.encode())
    return boundary, heads, f"\r\n--{boundary}--\r\n".encode()
