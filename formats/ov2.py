"""TomTom OV2 points of interest: one type-2 record per point, packed with numpy per batch.

A record is 1 byte type (2), little-endian int32 record length (13 + name bytes + 1), int32
longitude × 100000, int32 latitude × 100000 (rounded to nearest), then the name, NUL-ended.

- The point is the first geo_point_2d; a dataset with only a geo_shape uses its centroid.
  Records without a point are skipped and counted in `skipped`.
- The name is the `name_field` option, by default the first text field (else empty names).
- Names are Latin-1 by default, as TomTom devices read them; characters outside it become
  `?` and are counted in a warning. `name_encoding=utf-8` keeps them for newer readers.
  NUL characters are removed from names (they would end the record's name early)."""
from __future__ import annotations

from typing import Any, BinaryIO, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from domain.fields import Field
from formats.base import Format, FormatNotApplicable, Option, OptionError, Writer, require_wgs84
from formats.values import date_strings, datetime_strings, point_coords

RECORD_TYPE = 2
SCALE = 100_000
HEADER = np.dtype([("type", "u1"), ("length", "<i4"), ("lon", "<i4"), ("lat", "<i4")])  # packed: 13 bytes
ENCODINGS = ("latin-1", "utf-8")
NAME_TYPES = frozenset({"text", "int", "double", "boolean", "date", "datetime"})


def default_name_field(fields: Sequence[Field]) -> str | None:
    return next((f.name for f in fields if f.type == "text"), None)


def pack(lon: np.ndarray, lat: np.ndarray, names: list[bytes]) -> bytes:
    """Type-2 records for points given in degrees and names already encoded (without NUL)."""
    count = len(names)
    name_lengths = np.fromiter(map(len, names), dtype=np.int64, count=count)
    lengths = HEADER.itemsize + name_lengths + 1
    starts = np.cumsum(lengths) - lengths
    header = np.empty(count, HEADER)
    header["type"] = RECORD_TYPE
    header["length"] = lengths
    header["lon"] = np.rint(lon * SCALE)
    header["lat"] = np.rint(lat * SCALE)
    buffer = np.zeros(int(lengths.sum()), np.uint8)  # zeros: every name's NUL is already there
    buffer[starts[:, None] + np.arange(HEADER.itemsize)] = header.view(np.uint8).reshape(count, HEADER.itemsize)
    name_bytes = np.frombuffer(b"".join(names), np.uint8)
    name_offsets = np.cumsum(name_lengths) - name_lengths
    buffer[np.repeat(starts + HEADER.itemsize - name_offsets, name_lengths) + np.arange(len(name_bytes))] = name_bytes
    return buffer.tobytes()


class Ov2Writer(Writer):
    def __init__(self, out: BinaryIO, schema: pa.Schema, fields: Sequence[Field], options: Mapping[str, Any]):
        super().__init__(out, schema, fields, options)
        require_wgs84(options, "ov2")
        types = [f.type for f in self.fields]
        if "geo_point_2d" in types:
            self.point = types.index("geo_point_2d")
        elif "geo_shape" in types:
            self.point = types.index("geo_shape")
        else:
            raise FormatNotApplicable("format 'ov2' needs a geo_point_2d or geo_shape field")
        name = options.get("name_field") or default_name_field(self.fields)
        names = [f.name for f in self.fields]
        self.name = names.index(name) if name in names else None
        if name is not None and self.name is None:
            raise OptionError(f"option 'name_field' names unknown field {name!r}")
        if self.name is not None and self.fields[self.name].type not in NAME_TYPES:
            raise OptionError(f"option 'name_field': {name!r} is a {self.fields[self.name].type} field, not text")
        self.encoding = options["name_encoding"]
        self.unencodable = 0

    def _coords(self, column: pa.Array) -> tuple[np.ndarray, np.ndarray]:
        """(lon, lat) in degrees, NaN where the record has no point."""
        if self.fields[self.point].type == "geo_point_2d":
            lon, lat = point_coords(column)
            return lon.to_numpy(zero_copy_only=False), lat.to_numpy(zero_copy_only=False)
        centroids = shapely.centroid(shapely.from_wkb(column.to_numpy(zero_copy_only=False)))
        return shapely.get_x(centroids), shapely.get_y(centroids)

    def _names(self, batch: pa.RecordBatch) -> pa.Array:
        if self.name is None:
            return pa.nulls(batch.num_rows, pa.string())
        column, kind = batch.column(self.name), self.fields[self.name].type
        if kind == "datetime":
            column = datetime_strings(column, self.options["timezone"])
        elif kind == "date":
            column = date_strings(column)
        return pc.replace_substring(column.cast(pa.string()), "\x00", "")

    def write(self, batch: pa.RecordBatch) -> None:
        lon, lat = self._coords(batch.column(self.point))
        keep = np.isfinite(lon) & np.isfinite(lat)
        self.skipped += int((~keep).sum())
        names = self._names(batch).filter(pa.array(keep))
        if self.encoding == "latin-1":
            self.unencodable += pc.sum(pc.match_substring_regex(names, r"[^\x{0}-\x{ff}]")).as_py() or 0
        encoded = [b"" if s is None else s.encode(self.encoding, "replace") for s in names.to_pylist()]
        self.out.write(pack(lon[keep], lat[keep], encoded))

    def close(self) -> None:
        if self.unencodable:
            self.warnings.append(f"{self.unencodable} name(s) had characters outside Latin-1, written as '?'")


FORMAT = Format(
    name="ov2",
    extension="ov2",
    media_type="application/octet-stream",
    writer=Ov2Writer,
    binary=True,
    needs=frozenset({"geometry"}),
    options=(
        Option("name_field", "field", None, description="Field giving each POI's name; default: the first text field."),
        Option("name_encoding", "choice", "latin-1", choices=ENCODINGS,
               description="Encoding of names: latin-1 (what TomTom devices read) or utf-8."),
    ),
    description="TomTom OV2 points of interest (type-2 records).",
)
