"""Vectorised renderings of Arrow columns shared by the text formats: datetimes as ISO 8601
in a time zone, dates, points and shapes. Per-row Python is the cost of every format (see
MEASUREMENTS.md), so these work on whole columns with pyarrow.compute."""
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


def _offset_labels(minutes: np.ndarray) -> pa.Array:
    """'+HH:MM' for each offset in minutes, formatted once per distinct offset."""
    distinct, index = np.unique(minutes, return_inverse=True)
    labels = [f"{'-' if m < 0 else '+'}{abs(int(m)) // 60:02d}:{abs(int(m)) % 60:02d}" for m in distinct]
    return pa.array(labels, pa.string()).take(pa.array(index.astype(np.int32)))


def datetime_strings(arr: pa.Array, tz: str = "UTC") -> pa.Array:
    """ISO 8601 with the offset of `tz` (2024-03-31T02:30:00+02:00); seconds only unless some
    value has a fraction of a second."""
    utc = _as_utc(arr)
    local = pc.local_timestamp(utc.cast(pa.timestamp("us", tz=tz))) if tz != "UTC" else utc.cast(pa.timestamp("us"))
    micros = local.cast(pa.int64())
    whole = not pc.any(pc.not_equal(pc.subtract(micros, pc.multiply(pc.divide(micros, US_PER_S), US_PER_S)), 0)).as_py()
    text = local.cast(pa.timestamp("s"), safe=False) if whole else local
    text = pc.replace_substring(text.cast(pa.string()), " ", "T", max_replacements=1)
    if tz == "UTC":
        return pc.binary_join_element_wise(text, "+00:00", "")
    offset_us = pc.subtract(micros, utc.cast(pa.int64())).fill_null(0)
    minutes = offset_us.to_numpy(zero_copy_only=False) // (60 * US_PER_S)
    return pc.binary_join_element_wise(text, _offset_labels(minutes), "")


def date_strings(arr: pa.Array) -> pa.Array:
    return arr.cast(pa.date32()).cast(pa.string())


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
