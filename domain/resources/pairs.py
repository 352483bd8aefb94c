"""The latitude/longitude column pair a geo_point_2d field is built from: named by the
`lat_field`/`lon_field` parameters, or found by the columns' names."""
from __future__ import annotations

from domain.errors import Invalid
from domain.resources.names import lookup
from domain.resources.spec import Column, ResourceSpec

POINT_FIELD = "geo_point_2d"
LAT_NAMES = frozenset({"lat", "latitude"})
LON_NAMES = frozenset({"lon", "lng", "long", "longitude"})


def given_pair(columns: list[Column], spec: ResourceSpec) -> tuple[Column, Column] | None:
    """The pair the parameters name (both or neither), checked against the columns."""
    lat_key, lon_key = spec.param("lat_field"), spec.param("lon_field")
    if lat_key is None and lon_key is None:
        return None
    if lat_key is None or lon_key is None:
        raise Invalid("lat_field and lon_field go together: give both or neither")
    lat, lon = lookup(columns, lat_key), lookup(columns, lon_key)
    for key, column in ((lat_key, lat), (lon_key, lon)):
        if column is None:
            raise Invalid(f"no column {key!r} to take a point from; columns: {', '.join(c.name for c in columns)}")
    assert lat is not None and lon is not None
    return lat, lon


def named_pair(columns: list[Column]) -> tuple[Column, Column] | None:
    """The one column named like a latitude and the one named like a longitude, if there is
    exactly one of each."""
    lats = [c for c in columns if c.name in LAT_NAMES]
    lons = [c for c in columns if c.name in LON_NAMES]
    if len(lats) == 1 and len(lons) == 1:
        return lats[0], lons[0]
    return None


def find_pair(columns: list[Column], spec: ResourceSpec) -> tuple[Column, Column] | None:
    return given_pair(columns, spec) or named_pair(columns)
