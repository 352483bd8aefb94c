"""TomTom OV2 points of interest: one type-2 record per point, packed per batch from Arrow
buffers with numpy and pyarrow.compute, with no Python step per record.

A record is 1 byte type (2), little-endian int32 record length (13 + name bytes + 1), int32
longitude × 100000, int32 latitude × 100000 (rounded to nearest), then the name, NUL-ended.

- The point is the first geo_point_2d; a dataset with only a geo_shape uses its centroid.
  Records without a point are skipped and counted in `skipped`.
- The name is the `name_field` option, by default the first text field (else empty names).
- Names are Latin-1 by default, as TomTom devices read them; characters outside it become
  `?` and are counted in a warning. `name_encoding=utf-8` keeps them for newer readers.
  NUL characters are removed from names (they would end the record's name early).
- An export reads only the point's column and the name's (Format.fields_read), not the
  dataset's other columns.
- Packing: a batch's 13-byte headers are one numpy structured array, seen by Arrow as a
  binary column; Arrow's element-wise join appends each encoded name and its NUL, and the
  joined column's data buffer is the batch's records, written as it is. Batches are packed
  on the rendering threads (formats/parallel.py) and written in order."""
from __future__ import annotations

from typing import Any, BinaryIO, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from domain.fields import Field
from formats.base import Format, FormatNotApplicable, Option, OptionError, Writer
from formats.parallel import OrderedRendering
from formats.values import as_text, point_coords, string_bytes

RECORD_TYPE = 2
SCALE = 100_000
HEADER = np.dtype([("type", "u1"), ("length", "<i4"), ("lon", "<i4"), ("lat", "<i4")])  # packed: 13 bytes
ENCODINGS = ("latin-1", "utf-8")
NAME_TYPES = frozenset({"text", "int", "double", "boolean", "date", "datetime"})
BEYOND_LATIN1 = 0xC4  # UTF-8 lead bytes of U+0100 and above; continuation bytes are below 0xC0


def default_name_field(fields: Sequence[Field]) -> str | None:
    return next((f.name for f in fields if f.type == "text"), None)


def point_index(fields: Sequence[Field]) -> int | None:
    """The field giving the points: the first geo_point_2d, else the first geo_shape."""
    types = [f.type for f in fields]
    return next((types.index(t) for t in ("geo_point_2d", "geo_shape") if t in types), None)


def fields_read(fields: Sequence[Field], options: Mapping[str, Any]) -> list[str] | None:
    """The point's field and the name's: all a file holds (Format.fields_read)."""
    point = point_index(fields)
    if point is None:
        return None
    name = options.get("name_field") or default_name_field(fields)
    return [fields[point].name] + ([name] if name else [])


def binary_array(data: bytes | np.ndarray, offsets: np.ndarray) -> pa.Array:
    """A binary column over `data` cut at `offsets` (int32, one more than the values)."""
    return pa.Array.from_buffers(pa.binary(), len(offsets) - 1, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def latin1(names: pa.Array) -> tuple[pa.Array, int]:
    """Names (a string column without nulls) encoded as Latin-1, characters beyond it as `?`,
    and how many names had such characters. Works on the UTF-8 bytes: a character of
    U+0080-U+00FF is a lead byte C2 or C3 and one continuation byte, which become one byte;
    a lead byte from C4 on starts a character beyond Latin-1, which becomes `?`; continuation
    bytes (80-BF) go. ASCII-only batches pass through as they are."""
    data, offsets = string_bytes(names)
    lead = np.flatnonzero(data >= 0xC0)
    if not len(lead):
        return names.cast(pa.binary()), 0
    continuation = np.flatnonzero((data & 0xC0) == 0x80)
    lead_bytes = data[lead]
    beyond = lead_bytes >= BEYOND_LATIN1
    names_beyond = np.searchsorted(offsets, lead[beyond], side="right")  # sorted
    unencodable = int(np.count_nonzero(np.diff(names_beyond))) + 1 if len(names_beyond) else 0
    encoded = data.copy()
    encoded[lead] = np.where(beyond, ord("?"), ((lead_bytes & 0x03) << 6) | (data[lead + 1] & 0x3F))
    keep = np.ones(len(data), bool)
    keep[continuation] = False
    new_offsets = offsets - np.searchsorted(continuation, offsets)
    return binary_array(encoded[keep], new_offsets.astype(np.int32)), unencodable


def pack(lon: np.ndarray, lat: np.ndarray, names: pa.Array) -> pa.Buffer:
    """Type-2 records for points given in degrees and encoded names (a binary column without
    nulls or NULs): the bytes of the whole batch."""
    count = len(names)
    if not count:
        return pa.py_buffer(b"")
    header = np.empty(count, HEADER)
    header["type"] = RECORD_TYPE
    header["length"] = pc.binary_length(names).to_numpy() + (HEADER.itemsize + 1)
    header["lon"] = np.rint(lon * SCALE)
    header["lat"] = np.rint(lat * SCALE)
    headers = binary_array(header.view(np.uint8), np.arange(count + 1, dtype=np.int32) * HEADER.itemsize)
    records = pc.binary_join_element_wise(headers, names, pa.scalar(b"\x00"), b"")
    return records.buffers()[2][:int(header["length"].sum())]


class Ov2Writer(Writer):
    def __init__(self, out: BinaryIO, schema: pa.Schema, fields: Sequence[Field], options: Mapping[str, Any]):
        super().__init__(out, schema, fields, options)
        point = point_index(self.fields)
        if point is None:
            raise FormatNotApplicable("format 'ov2' needs a geo_point_2d or geo_shape field")
        self.point = point
        name = options.get("name_field") or default_name_field(self.fields)
        names = [f.name for f in self.fields]
        self.name = names.index(name) if name in names else None
        if name is not None and self.name is None:
            raise OptionError(f"option 'name_field' names unknown field {name!r}")
        if self.name is not None and self.fields[self.name].type not in NAME_TYPES:
            raise OptionError(f"option 'name_field': {name!r} is a {self.fields[self.name].type} field, not text")
        self.encoding = options["name_encoding"]
        self.counts: list[tuple[int, int]] = []  # (records skipped, names that lost characters) a batch
        self.rendering = OrderedRendering(self.render, out.write)

    def _coords(self, column: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """(lon, lat) in degrees, NaN where the record has no point."""
        if self.fields[self.point].type == "geo_point_2d":
            lon, lat = point_coords(column)
            return lon.to_numpy(zero_copy_only=False), lat.to_numpy(zero_copy_only=False)
        centroids = shapely.centroid(shapely.from_wkb(column.to_numpy(zero_copy_only=False)))
        return shapely.get_x(centroids), shapely.get_y(centroids)

    def _names(self, batch: pa.RecordBatch) -> pa.Array:
        """The names as text, null as empty, without NUL characters."""
        if self.name is None:
            return pa.repeat(pa.scalar("", pa.string()), batch.num_rows)
        names = as_text(batch.column(self.name), self.fields[self.name].type, self.options["timezone"]).fill_null("")
        if not (string_bytes(names)[0] == 0).any():
            return names
        return pc.replace_substring(names, "\x00", "")

    def render(self, batch: pa.RecordBatch) -> pa.Buffer:
        """The batch's records (on a rendering thread); what it skipped and how many names
        lost characters go to `counts`."""
        lon, lat = self._coords(batch.column(self.point))
        keep = np.isfinite(lon) & np.isfinite(lat)
        names = self._names(batch)
        if not keep.all():
            lon, lat, names = lon[keep], lat[keep], names.filter(pa.array(keep))
        encoded, unencodable = (names.cast(pa.binary()), 0) if self.encoding == "utf-8" else latin1(names)
        self.counts.append((len(keep) - len(names), unencodable))  # list.append: safe across threads
        return pack(lon, lat, encoded)

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows:
            self.rendering.submit(batch)

    def close(self) -> None:
        self.rendering.finish()
        self.skipped = sum(skipped for skipped, _ in self.counts)
        unencodable = sum(count for _, count in self.counts)
        if unencodable:
            self.warnings.append(f"{unencodable} name(s) had characters outside Latin-1, written as '?'")

    def abort(self) -> None:
        self.rendering.abort()


FORMAT = Format(
    name="ov2",
    extension="ov2",
    media_type="application/octet-stream",
    writer=Ov2Writer,
    binary=True,
    needs=frozenset({"geometry"}),
    reads=fields_read,
    options=(
        Option("name_field", "field", None, description="Field giving each POI's name; default: the first text field."),
        Option("name_encoding", "choice", "latin-1", choices=ENCODINGS,
               description="Encoding of names: latin-1 (what TomTom devices read) or utf-8."),
    ),
    description="TomTom OV2 points of interest (type-2 records).",
)
