"""Geometry literals (geom'<WKT or GeoJSON>') and the geometry filters over a geo_point_2d or
geo_shape column: intersects(), within(), disjoint() and their v2.0 spellings.

The relation of each record's geometry with the literal is tested by shapely 2, a batch at a
time, inside the scan: a pyarrow scalar function (registered once per process) takes the
column and the literal's WKB, and answers null where the record has no geometry (or one that
cannot be read), so that NOT leaves those records out as SQL does. The literal is parsed once
per query and prepared once per batch; its size counts in the request's
budget (cost.Budget.spend_vertices)."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from domain.fields import GEO_POINT

RELATIONS = ("intersects", "within", "disjoint")
_FUNCTION = "exportd_odsql_relate"


class BadGeometry(ValueError):
    """A geometry literal that is neither WKT nor GeoJSON of a non-empty geometry."""


@lru_cache(maxsize=64)
def parse(text: str) -> shapely.Geometry:
    """The geometry of a literal's text: GeoJSON when it starts with '{', else WKT."""
    text = text.strip()
    try:
        geometry = shapely.from_geojson(text) if text.startswith("{") else shapely.from_wkt(text)
    except Exception:  # shapely raises several kinds of error (GEOSException, ValueError, …)
        geometry = None
    if geometry is None or geometry.is_empty:
        raise BadGeometry("expected a geometry as WKT or GeoJSON, as geom'POLYGON((lon lat, …))'")
    if not shapely.is_valid(geometry):
        geometry = shapely.make_valid(geometry)
    return geometry


def vertices(text: str) -> int:
    """How many vertices the literal holds; 0 when it is not a geometry."""
    try:
        return int(shapely.get_num_coordinates(parse(text)))
    except BadGeometry:
        return 0


def _prepared(wkb: bytes) -> shapely.Geometry:
    """The literal, prepared for this batch alone: pyarrow's threads test batches at once, and
    shapely (releasing the GIL) must not share one prepared GEOS geometry between threads,
    whose index is built lazily: that crashed the process."""
    geometry = shapely.from_wkb(wkb)
    shapely.prepare(geometry)
    return geometry


def _geometries(column: pa.Array) -> np.ndarray:
    """The column as an array of shapely geometries (None where null or unreadable)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_struct(column.type):
        lon = column.field("lon").to_numpy(zero_copy_only=False)
        lat = column.field("lat").to_numpy(zero_copy_only=False)
        points = shapely.points(np.nan_to_num(lon), np.nan_to_num(lat))
        valid = column.is_valid().to_numpy(zero_copy_only=False) & ~np.isnan(lon) & ~np.isnan(lat)
        return np.where(valid, points, None)
    return shapely.from_wkb(column.to_numpy(zero_copy_only=False), on_invalid="ignore")


def _relate(ctx, column, literal, relation):
    wkb = literal.as_py() if isinstance(literal, pa.Scalar) else literal[0].as_py()
    how = relation.as_py() if isinstance(relation, pa.Scalar) else relation[0].as_py()
    query = _prepared(wkb)
    geometries = _geometries(column)
    known = shapely.is_geometry(geometries)
    if how == "within":
        answer = shapely.contains(query, geometries)  # a record within the literal: the literal contains it
    else:
        answer = shapely.intersects(query, geometries)
        if how == "disjoint":
            answer = ~answer
    return pa.array(answer, pa.bool_(), mask=~known)


def _register() -> None:
    for name, kind in ((_FUNCTION + "_point", GEO_POINT), (_FUNCTION + "_shape", pa.binary())):
        try:
            pc.register_scalar_function(
                _relate, name, {"summary": "ODSQL geometry relation", "description": "see domain/odsql/geometry.py"},
                {"geometry": kind, "literal": pa.binary(), "relation": pa.string()}, pa.bool_())
        except pa.ArrowKeyError:  # already registered in this process
            pass


_register()


def relation(name: str, field_type: str, literal: shapely.Geometry, how: str) -> pc.Expression:
    """Whether each record's geometry (a `field_type` column) `how`-relates to `literal`. On
    points, the literal's bounding box is tested first with plain comparisons, which the scan
    can also use to skip row groups."""
    function = _FUNCTION + ("_point" if field_type == "geo_point_2d" else "_shape")
    exact = pc.Expression._call(function, [pc.field(name), pc.scalar(pa.scalar(shapely.to_wkb(literal), pa.binary())),
                                       pc.scalar(how)])
    if field_type != "geo_point_2d" or how == "disjoint":
        return exact
    west, south, east, north = shapely.bounds(literal)
    lon, lat = pc.field(name, "lon"), pc.field(name, "lat")
    return (lat >= south) & (lat <= north) & (lon >= west) & (lon <= east) & exact
