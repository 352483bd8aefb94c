"""Turning a column into a field type's Arrow type, value by value, telling which values could
not be converted.

Text is the common ground: CSV, XLSX and GeoJSON properties arrive as text, and a typed column
(Parquet) that is not already in its field's type is written as text first. Numbers and
booleans are converted vectorised (pyarrow.compute); dates, datetimes and points by parsing
each distinct value once in Python (exact calendar checks: 2024-02-30 is refused); shapes by
shapely, vectorised.

`convert(array, type)` answers the converted array (null where the value could not be
converted) and a mask of those values. `strict=True` is inference's stricter reading: it
refuses what a file's author would not mean as that type (`007` as an int, a 20-digit code as a
double, a pair of integers as a point).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, Callable

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from domain.fields import ARROW_TYPES, GEO_POINT

EXPECTED = {
    "int": "an integer",
    "double": "a number",
    "boolean": "true/false, yes/no, oui/non, vrai/faux or 1/0",
    "date": "a date as yyyy-mm-dd or dd/mm/yyyy",
    "datetime": "an ISO 8601 date and time (yyyy-mm-ddThh:mm:ss, with or without offset) or dd/mm/yyyy hh:mm[:ss]",
    "geo_point_2d": '"lat,lon" with -90 <= lat <= 90 and -180 <= lon <= 180, or a point as WKT or GeoJSON',
    "geo_shape": "a geometry as WKT or GeoJSON",
    "text": "text",
}

INT = r"^[+-]?\d+$"
DOUBLE = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"
LEADING_ZERO = r"^[+-]?0\d"
LONG_DIGITS = r"^[+-]?\d{16,}$"
TRUE = ("true", "yes", "1", "oui", "vrai")
FALSE = ("false", "no", "0", "non", "faux")

_ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_FR_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")
_ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}(:\d{2}(:\d{2}([.,]\d+)?)?)?)?(Z|[+-]\d{2}(:?\d{2})?)?$")
_FR_DATETIME = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})[ T](\d{1,2}):(\d{2})(?::(\d{2}))?$")
_LAT_LON = re.compile(r"^\s*([+-]?\d+(?:\.\d+)?)\s*,\s*([+-]?\d+(?:\.\d+)?)\s*$")
_DECIMAL = re.compile(r"\.\d")


@dataclass(frozen=True)
class Converted:
    """`values` in the field type's Arrow type, null where `bad` (a numpy bool mask) is set."""

    values: pa.Array
    bad: np.ndarray


def convert(array: pa.Array, type_: str, strict: bool = False) -> Converted:
    """`array` (any Arrow type) as field type `type_`."""
    target = ARROW_TYPES[type_]
    typed = _from_typed(array, type_)
    if typed is not None:
        return Converted(typed, _no_bad(typed, array))
    text = as_text(array)
    if type_ == "text":
        values = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)
        return Converted(values, np.zeros(len(text), dtype=bool))
    trimmed = pc.utf8_trim_whitespace(text)
    trimmed = pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed)
    values, ok = _CONVERTERS[type_](trimmed, strict)
    present = pc.is_valid(trimmed).to_numpy(zero_copy_only=False)
    bad = present & ~ok
    if bad.any():
        values = pc.if_else(pa.array(bad), pa.scalar(None, target), values)
    return Converted(values, bad)


def _no_bad(values: pa.Array, source: pa.Array) -> np.ndarray:
    return (pc.is_null(values).to_numpy(zero_copy_only=False) & pc.is_valid(source).to_numpy(zero_copy_only=False))


def _mask(array: pa.Array) -> np.ndarray:
    """A boolean Arrow array as numpy, null counting as false."""
    return pc.fill_null(array, False).to_numpy(zero_copy_only=False)


# -- typed sources (Parquet, GeoJSON geometries) --------------------------------------------


def _from_typed(array: pa.Array, type_: str) -> pa.Array | None:
    """The array in its field type's Arrow type when it already holds that kind of value
    (int32 → int64, naive timestamps taken as UTC, a lat/lon struct reordered), else None."""
    t = array.type
    target = ARROW_TYPES[type_]
    if t == target and type_ not in ("geo_shape", "text"):
        return array
    if type_ == "int" and pa.types.is_integer(t):
        return array.cast(target)  # uint64 beyond int64 raises: such a column is not an int field
    if type_ == "double" and (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)):
        return array.cast(target)
    if type_ == "date" and pa.types.is_date(t):
        return array.cast(target)
    if type_ == "datetime" and pa.types.is_timestamp(t):
        if t.tz is None:
            micros = array.cast(pa.timestamp("us", None), safe=False).cast(pa.int64())
            return micros.cast(target)
        return array.cast(target, safe=False)
    if type_ == "datetime" and pa.types.is_date(t):
        return array.cast(pa.timestamp("us", None)).cast(pa.int64()).cast(target)
    if type_ == "geo_point_2d" and pa.types.is_struct(t) and {f.name for f in t} >= {"lon", "lat"}:
        lon = pc.struct_field(array, "lon").cast(pa.float64())
        lat = pc.struct_field(array, "lat").cast(pa.float64())
        return pa.StructArray.from_arrays([lon, lat], fields=list(GEO_POINT), mask=pc.is_null(array))
    if type_ == "geo_point_2d" and (pa.types.is_binary(t) or pa.types.is_large_binary(t)):
        # WKB points, as exportd's own Parquet (GeoParquet) export writes a geo_point_2d
        geoms = shapely.from_wkb(array.cast(pa.binary()).to_numpy(zero_copy_only=False), on_invalid="ignore")
        points = ~shapely.is_missing(geoms) & (shapely.get_type_id(geoms) == 0) & ~shapely.is_empty(geoms)
        lon, lat = np.where(points, shapely.get_x(geoms), np.nan), np.where(points, shapely.get_y(geoms), np.nan)
        return pa.StructArray.from_arrays([pa.array(lon), pa.array(lat)], fields=list(GEO_POINT), mask=pa.array(~points))
    if type_ == "geo_shape" and (pa.types.is_binary(t) or pa.types.is_large_binary(t)):
        wkb = array.cast(pa.binary())
        geoms = shapely.from_wkb(wkb.to_numpy(zero_copy_only=False), on_invalid="ignore")
        return pc.if_else(pa.array(shapely.is_missing(geoms)), pa.scalar(None, pa.binary()), wkb)
    return None


def as_text(array: pa.Array) -> pa.Array:
    """Any column as text: strings as they are, booleans as true/false, dates and datetimes in
    ISO 8601, numbers as written by Arrow, nested values as JSON."""
    t = array.type
    if pa.types.is_string(t):
        return array
    if pa.types.is_large_string(t) or pa.types.is_dictionary(t) and pa.types.is_string(t.value_type):
        return array.cast(pa.string())
    if pa.types.is_null(t):
        return pa.nulls(len(array), pa.string())
    if pa.types.is_timestamp(t) or pa.types.is_time(t):
        return pa.array([None if v is None else v.isoformat() for v in array.to_pylist()], pa.string())
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return pa.array([None if v is None else v.decode("utf-8", "replace") for v in array.to_pylist()], pa.string())
    try:
        return array.cast(pa.string())
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
        return pa.array([None if v is None else orjson.dumps(v, default=str).decode() for v in array.to_pylist()], pa.string())


# -- text → each type -------------------------------------------------------------------------


def _int(text: pa.Array, strict: bool) -> tuple[pa.Array, np.ndarray]:
    ok = _mask(pc.match_substring_regex(text, INT))
    if strict:
        ok &= ~_mask(pc.match_substring_regex(text, LEADING_ZERO))
    candidates = pc.if_else(pa.array(ok), pc.replace_substring_regex(text, r"^\+", ""), pa.scalar(None, pa.string()))
    try:
        return candidates.cast(pa.int64()), ok
    except pa.ArrowInvalid:  # beyond int64: find which, one by one
        values = []
        for i, v in enumerate(candidates.to_pylist()):
            n = None if v is None else int(v)
            if n is not None and not -(2**63) <= n < 2**63:
                ok[i], n = False, None
            values.append(n)
        return pa.array(values, pa.int64()), ok


def _double(text: pa.Array, strict: bool) -> tuple[pa.Array, np.ndarray]:
    ok = _mask(pc.match_substring_regex(text, DOUBLE))
    if strict:
        ok &= ~_mask(pc.match_substring_regex(text, LEADING_ZERO))
        ok &= ~_mask(pc.match_substring_regex(text, LONG_DIGITS))
    candidates = pc.if_else(pa.array(ok), text, pa.scalar(None, pa.string()))
    return candidates.cast(pa.float64()), ok


def _boolean(text: pa.Array, strict: bool) -> tuple[pa.Array, np.ndarray]:
    lower = pc.utf8_lower(text)
    true = _mask(pc.is_in(lower, value_set=pa.array(TRUE)))
    false = _mask(pc.is_in(lower, value_set=pa.array(FALSE)))
    values = pc.if_else(pa.array(true | false), pa.array(true), pa.scalar(None, pa.bool_()))
    return values, true | false


def _date(text: str) -> date | None:
    m = _ISO_DATE.match(text)
    if m:
        return date(int(m[1]), int(m[2]), int(m[3]))
    m = _FR_DATE.match(text)
    if m:
        return date(int(m[3]), int(m[2]), int(m[1]))
    return None


def _datetime(text: str) -> datetime | None:
    if _ISO_DATETIME.match(text):
        moment = datetime.fromisoformat(text.replace(",", "."))
    elif m := _FR_DATETIME.match(text):
        moment = datetime(int(m[3]), int(m[2]), int(m[1]), int(m[4]), int(m[5]), int(m[6] or 0))
    elif (day := _date(text)) is not None:
        moment = datetime(day.year, day.month, day.day)
    else:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _point(text: str, strict: bool) -> dict | None:
    m = _LAT_LON.match(text)
    if m:
        if strict and not (_DECIMAL.search(m[1]) and _DECIMAL.search(m[2])):
            return None
        lat, lon = float(m[1]), float(m[2])
    elif strict:
        return None
    else:
        geom = _one_shape(text)
        if geom is None or geom.is_empty:
            return None
        centre = geom.centroid
        lon, lat = centre.x, centre.y
    if -90 <= lat <= 90 and -180 <= lon <= 180:
        return {"lon": lon, "lat": lat}
    return None


def _one_shape(text: str) -> Any:
    parse = shapely.from_geojson if text.startswith("{") else shapely.from_wkt
    return parse(text, on_invalid="ignore")


def _by_distinct(parse: Callable[[str], Any], target: pa.DataType) -> Callable[[pa.Array, bool], tuple[pa.Array, np.ndarray]]:
    """A converter parsing each distinct value once in Python (columns of dates repeat a lot)."""

    def convert(text: pa.Array, strict: bool) -> tuple[pa.Array, np.ndarray]:
        encoded = pc.dictionary_encode(text)
        parsed = []
        for value in encoded.dictionary.to_pylist():
            try:
                parsed.append(parse(value))
            except ValueError:  # out of range: 31/02/2024, 25:00
                parsed.append(None)
        values = pc.take(pa.array(parsed, target), encoded.indices)
        return values, _mask(pc.is_valid(values))

    return convert


def _point_converter(text: pa.Array, strict: bool) -> tuple[pa.Array, np.ndarray]:
    return _by_distinct(lambda v: _point(v, strict), GEO_POINT)(text, strict)


def _shape(text: pa.Array, strict: bool) -> tuple[pa.Array, np.ndarray]:
    strings = text.to_numpy(zero_copy_only=False)
    is_json = _mask(pc.starts_with(text, "{"))
    geoms = np.empty(len(strings), dtype=object)
    if is_json.any():
        geoms[is_json] = shapely.from_geojson(strings[is_json], on_invalid="ignore")
    wkt = ~is_json & _mask(pc.is_valid(text))
    if wkt.any():
        geoms[wkt] = shapely.from_wkt(strings[wkt], on_invalid="ignore")
    ok = ~shapely.is_missing(geoms)
    wkb = shapely.to_wkb(geoms)
    return pa.array(wkb, pa.binary(), mask=~ok), ok


_CONVERTERS: dict[str, Callable[[pa.Array, bool], tuple[pa.Array, np.ndarray]]] = {
    "int": _int,
    "double": _double,
    "boolean": _boolean,
    "date": _by_distinct(_date, pa.date32()),
    "datetime": _by_distinct(_datetime, ARROW_TYPES["datetime"]),
    "geo_point_2d": _point_converter,
    "geo_shape": _shape,
}


def point_from_pair(lat: pa.Array, lon: pa.Array) -> Converted:
    """A geo_point_2d column from a latitude and a longitude column: null where both are empty,
    bad where either is not a number, only one is given, or they are out of range."""
    lat_c, lon_c = convert(lat, "double"), convert(lon, "double")
    lat_null = pc.is_null(lat_c.values).to_numpy(zero_copy_only=False)
    lon_null = pc.is_null(lon_c.values).to_numpy(zero_copy_only=False)
    lat_v = lat_c.values.to_numpy(zero_copy_only=False)
    lon_v = lon_c.values.to_numpy(zero_copy_only=False)
    with np.errstate(invalid="ignore"):
        in_range = (np.abs(lat_v) <= 90) & (np.abs(lon_v) <= 180)
    both = ~lat_null & ~lon_null
    bad = lat_c.bad | lon_c.bad | (lat_null != lon_null) | (both & ~in_range)
    valid = both & ~bad
    values = pa.StructArray.from_arrays(
        [pa.array(lon_v, pa.float64(), mask=~valid), pa.array(lat_v, pa.float64(), mask=~valid)],
        fields=list(GEO_POINT), mask=pa.array(~valid))
    return Converted(values, bad)
