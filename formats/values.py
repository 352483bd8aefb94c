"""Vectorised renderings of Arrow columns shared by the text formats: datetimes as ISO 8601
in a time zone, dates, points and shapes, XML text, coordinates in degrees. Per-row Python is
the cost of every format (see MEASUREMENTS.md), so these work on whole columns with
pyarrow.compute."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

US_PER_S = 1_000_000


def _as_utc(arr: pa.Array) -> pa.Array:
    """The column as timestamp[us, tz=UTC]; naive timestamps are taken to be UTC."""
    if arr.type.tz is None:
        arr = arr.cast(pa.timestamp("us")).cast(pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    return arr.cast(pa.timestamp("us", tz="UTC"))


def _offset_bytes(minutes: np.ndarray) -> np.ndarray:
    """'+HH:MM' (6 ASCII bytes a row) for each offset in minutes, formatted once per distinct
    offset."""
    distinct, index = np.unique(minutes, return_inverse=True)
    labels = "".join(f"{'-' if m < 0 else '+'}{abs(int(m)) // 60:02d}:{abs(int(m)) % 60:02d}" for m in distinct)
    return np.frombuffer(labels.encode(), np.uint8).reshape(-1, 6)[index.reshape(-1)]


def _fixed_width_strings(rows: np.ndarray, like: pa.Array) -> pa.Array:
    """A string array of the rows of an (n, width) matrix of ASCII bytes, null where `like` is."""
    n, width = rows.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    validity = like.is_valid().buffers()[1] if like.null_count else None
    return pa.Array.from_buffers(pa.string(), n, [validity, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(rows))],
                                 like.null_count)


def datetime_strings(arr: pa.Array, tz: str = "UTC") -> pa.Array:
    """ISO 8601 with the offset of `tz` (2024-03-31T02:30:00+02:00); seconds only unless some
    value has a fraction of a second. Arrow casts each instant to "YYYY-MM-DD HH:MM:SS[.ffffff]"
    (fixed width for years 0000-9999); the 'T' and the offsets are then set in one numpy pass,
    four times faster than string kernels (replace, join) over the whole column."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    utc = _as_utc(arr)
    local = pc.local_timestamp(utc.cast(pa.timestamp("us", tz=tz))) if tz != "UTC" else utc.cast(pa.timestamp("us"))
    local = local.fill_null(pa.scalar(0, local.type))  # nulls are formatted as the epoch, then masked
    micros = local.cast(pa.int64()).to_numpy()
    whole = not np.any(micros % US_PER_S)
    text = local.cast(pa.timestamp("s" if whole else "us"), safe=False).cast(pa.string())
    if tz == "UTC":
        offsets = np.broadcast_to(np.frombuffer(b"+00:00", np.uint8), (len(arr), 6))
    else:
        seconds = (micros - utc.cast(pa.int64()).fill_null(0).to_numpy()) // US_PER_S
        if np.any(seconds % 60):  # local mean time before time zones (Paris: +00:09:21): as Python writes it
            return _with_offsets(text, _offset_labels(seconds), arr)
        offsets = _offset_bytes(seconds // 60)
    data, _ = string_bytes(text)
    width = 19 if whole else 26
    if len(data) == len(arr) * width:  # no value is shorter: all years are 0000-9999
        rows = np.empty((len(arr), width + 6), np.uint8)
        rows[:, :width] = data.reshape(-1, width)
        rows[:, 10] = ord("T")
        rows[:, width:] = offsets
        return _fixed_width_strings(rows, arr)
    return _with_offsets(text, _fixed_width_strings(offsets, local), arr)


def _with_offsets(text: pa.Array, offsets: pa.Array, like: pa.Array) -> pa.Array:
    """"YYYY-MM-DD HH:MM:SS" texts with the 'T' set and the offsets joined on, for any width."""
    text = pc.replace_substring(text, " ", "T", max_replacements=1)
    joined = pc.binary_join_element_wise(text, offsets, "")
    return pc.if_else(like.is_valid(), joined, pa.scalar(None, pa.string()))


def _offset_labels(seconds: np.ndarray) -> pa.Array:
    """'+HH:MM', or '+HH:MM:SS' where the offset has seconds, for each offset in seconds."""
    distinct, index = np.unique(seconds, return_inverse=True)
    labels = []
    for total in map(int, distinct):
        hours, rest = divmod(abs(total), 3600)
        label = f"{'-' if total < 0 else '+'}{hours:02d}:{rest // 60:02d}"
        labels.append(label + (f":{rest % 60:02d}" if rest % 60 else ""))
    return pa.array(labels, pa.string()).take(pa.array(index.reshape(-1)))


def date_strings(arr: pa.Array) -> pa.Array:
    return arr.cast(pa.date32()).cast(pa.string())


def string_bytes(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The bytes of a string (or binary) column (uint8, no copy) and its int32 offsets into them,
    the first 0: value i is bytes[offsets[i]:offsets[i + 1]]. Fill nulls first if they must
    read as empty: Arrow does not promise a null's bytes are."""
    offsets = np.frombuffer(arr.buffers()[1], np.int32, len(arr) + 1, arr.offset * 4)
    data = arr.buffers()[2]
    if data is None:
        return np.empty(0, np.uint8), offsets - offsets[0]
    return np.frombuffer(data, np.uint8)[offsets[0]:offsets[-1]], offsets - offsets[0]


XML_ENTITIES = (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"))  # "&" first: the others add one


def xml_escaped(arr: pa.Array) -> pa.Array:
    """A string column as XML character data (& < > as entities); a pass per character, only
    for characters the column holds."""
    data, _ = string_bytes(arr)
    for char, entity in XML_ENTITIES:
        if (data == ord(char)).any():
            arr = pc.replace_substring(arr, char, entity)
    return arr


# Characters XML 1.0 cannot hold: C0 controls but tab, line feed and carriage return; U+FFFE, U+FFFF.
NOT_XML = "[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]"
NOT_XML_BYTES = np.zeros(256, bool)  # by byte value: a lookup is twice as fast as np.isin
NOT_XML_BYTES[[*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0xEF]] = True  # 0xEF: U+FFFx lead
MORE_ENTITIES = (('"', "&quot;"), ("\r", "&#13;"))


def xml_text(arr: pa.Array) -> pa.Array:
    """A string column as XML 1.0 character data or attribute value, nulls staying null:
    & < > " as entities, a carriage return as &#13; (a parser would read a raw one as a line
    feed), the control characters XML 1.0 cannot hold removed, as GDAL removes them. Each
    pass runs only for characters the column holds."""
    data, _ = string_bytes(arr)
    if NOT_XML_BYTES[data].any():
        arr = pc.replace_substring_regex(arr, NOT_XML, "")
    arr = xml_escaped(arr)
    for char, entity in MORE_ENTITIES:
        if (data == ord(char)).any():
            arr = pc.replace_substring(arr, char, entity)
    return arr


def coordinate_strings(values: np.ndarray) -> pa.Array:
    """Degrees as xsd:decimal, the shortest text that reads back as the same double; Arrow's
    exponent form (1e-07) rewritten positionally for the rare values that get it."""
    text = pa.array(values, pa.float64()).cast(pa.string())
    exponent = pc.match_substring(text, "e")
    if not pc.any(exponent).as_py():
        return text
    positional = [np.format_float_positional(v, trim="-") for v in values[exponent.to_numpy(zero_copy_only=False)]]
    return pc.replace_with_mask(text, exponent, pa.array(positional, pa.string()))


def point_coords(arr: pa.StructArray) -> tuple[pa.Array, pa.Array]:
    """(lon, lat) columns of a geo_point_2d; null where the point is null."""
    valid = arr.is_valid()
    lon = pc.if_else(valid, arr.field("lon"), None)
    lat = pc.if_else(valid, arr.field("lat"), None)
    return lon, lat


def point_lat_lon_strings(arr: pa.StructArray) -> pa.Array:
    """'lat, lon' as OpenDataSoft writes a geo_point_2d in CSV."""
    lon, lat = point_coords(arr)
    return pc.binary_join_element_wise(lat.cast(pa.string()), lon.cast(pa.string()), ", ")


def shape_geojson_strings(arr: pa.Array) -> pa.Array:
    """GeoJSON geometry text for a WKB geo_shape column; null stays null."""
    geoms = shapely.from_wkb(arr.to_numpy(zero_copy_only=False))
    text = shapely.to_geojson(geoms)
    return pa.array(text, pa.string(), mask=shapely.is_missing(geoms))


def as_text(column: pa.Array, field_type: str, tz: str = "UTC", list_separator: str = ", ") -> pa.Array:
    """Any field rendered as text, the way the CSV export shows it."""
    if field_type == "datetime":
        return datetime_strings(column, tz)
    if field_type == "date":
        return date_strings(column)
    if field_type == "geo_point_2d":
        return point_lat_lon_strings(column)
    if field_type == "geo_shape":
        return shape_geojson_strings(column)
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        return pc.binary_join(column.cast(pa.list_(pa.string())), list_separator)
    return column.cast(pa.string())
