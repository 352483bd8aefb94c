"""GeoJSON (RFC 7946): one FeatureCollection streamed batch by batch — the header on open,
features joined by commas, the footer on close, so the file is valid with zero records.

The geometry is the first geo_shape field, else the first geo_point_2d; records without one
get `"geometry": null`. Every other field is a property, rendered as formats/json.py renders
it — including a second geo field (a geo_point_2d next to the geo_shape stays a {"lon", "lat"}
property, so nothing is lost). Coordinates are EPSG:4326 as stored, or moved to the `epsg` option's
system through GDAL (formats.geo.reproject), named in a legacy `crs` member.

Nothing goes through Python objects per record: shapes are rendered with shapely.to_geojson,
points as text from their coordinates by polars; the properties are the JSON export's records
(polars' JSON encoder for plain field types, formats/json.py's pyarrow.compute texts
otherwise); one binary_join_element_wise then puts each feature together. Batches are
rendered on the rendering threads (formats/parallel.py) and written in order."""
from __future__ import annotations

from typing import Any, BinaryIO, Mapping, Sequence

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from domain.fields import Field
from formats.base import WGS84, Format, FormatNotApplicable, Writer
from formats.geo import check_epsg, reproject
from formats.json import buffer_of, joined, object_texts, polars_batch, polars_ready
from formats.parallel import OrderedRendering
from formats.values import point_coords, shape_geojson_strings

HEADER = b'{"type":"FeatureCollection","features":['
# RFC 7946 knows only WGS 84; for another `epsg` the 2008 GeoJSON `crs` member names it, as GDAL does.
HEADER_WITH_CRS = b'{"type":"FeatureCollection","crs":{"type":"name","properties":{"name":"urn:ogc:def:crs:EPSG::{epsg}"}},"features":['


def geometry_index(fields: Sequence[Field]) -> int | None:
    """Position of the field giving the geometry: the first geo_shape wins over a geo_point_2d."""
    for wanted in ("geo_shape", "geo_point_2d"):
        for i, f in enumerate(fields):
            if f.type == wanted:
                return i
    return None


def point_geometries(column: pa.StructArray) -> np.ndarray:
    """Shapely points for a geo_point_2d column; None where the point is null."""
    lon, lat = point_coords(column)
    coords = np.column_stack([lon.to_numpy(zero_copy_only=False), lat.to_numpy(zero_copy_only=False)])
    geoms = shapely.points(coords.astype(np.float64))
    geoms[~column.is_valid().to_numpy(zero_copy_only=False)] = None
    return geoms


def geometry_texts(column: pa.Array, field_type: str, epsg: int = WGS84) -> pa.Array:
    """GeoJSON geometry text of each record; null where missing; moved to `epsg` when it is
    not WGS 84. Points in WGS 84 are built as text from their coordinates, without shapely."""
    if epsg != WGS84:
        geoms = shapely.from_wkb(column.to_numpy(zero_copy_only=False)) if field_type == "geo_shape" else point_geometries(column)
        geoms = reproject(geoms, epsg)
        return pa.array(shapely.to_geojson(geoms), pa.string(), mask=shapely.is_missing(geoms))
    if field_type == "geo_shape":
        return shape_geojson_strings(column)
    lon, lat = point_coords(column)
    text = pl.from_arrow(pa.table({"lon": lon, "lat": lat})).select(pl.concat_str(
        pl.lit('{"type":"Point","coordinates":['), _number("lon"), pl.lit(","), _number("lat"), pl.lit("]}"))).to_series()
    return pc.if_else(column.is_valid(), text.to_arrow().cast(pa.string()), pa.scalar(None, pa.string()))


def _number(name: str) -> pl.Expr:
    """A float column as JSON numbers, as formats/json.py writes them (polars' shortest form,
    whole values with `.0`): "null" for null, NaN and ±inf."""
    column = pl.col(name)
    return pl.when(column.is_finite()).then(column.cast(pl.String)).otherwise(pl.lit("null"))


def polars_objects(batch: pa.RecordBatch, fields: Sequence[Field], names: Sequence[str], timezone: str) -> pa.Array | None:
    """The JSON export's records (formats.json.polars_lines: the same text, byte for byte) as
    a string column of objects, from polars' encoder in one pass, with no lines to cut apart;
    None for field types polars does not write as the JSON export does."""
    if not polars_ready(fields, batch.schema):
        return None
    frame = pl.from_arrow(polars_batch(batch, fields, names, timezone))
    return frame.select(pl.struct(pl.all()).struct.json_encode()).to_series().to_arrow().cast(pa.string())


class GeoJsonWriter(Writer):
    def __init__(self, out: BinaryIO, schema: pa.Schema, fields: Sequence[Field], options: Mapping[str, Any]):
        super().__init__(out, schema, fields, options)
        self.epsg = options.get("epsg", WGS84)
        if self.epsg != WGS84:
            check_epsg(self.epsg)
        index = geometry_index(self.fields)
        if index is None:
            raise FormatNotApplicable("format 'geojson' needs a geo_point_2d or geo_shape field")
        self.geometry = index
        self.properties = [i for i in range(len(self.fields)) if i != index]
        names = self.column_names()
        self.names = [names[i] for i in self.properties]
        self.first = True
        self.rendering = OrderedRendering(self.render, self.put)
        out.write(HEADER if self.epsg == WGS84 else HEADER_WITH_CRS.replace(b"{epsg}", str(self.epsg).encode()))

    def render(self, batch: pa.RecordBatch) -> memoryview:
        """The batch's features, each after a `,\n` (on a rendering thread)."""
        geometries = geometry_texts(batch.column(self.geometry), self.fields[self.geometry].type, self.epsg)
        return buffer_of(joined([',\n{"type":"Feature","geometry":', pc.fill_null(geometries, "null"),
                                 ',"properties":', *self.properties_texts(batch)], batch.num_rows))

    def put(self, features: memoryview) -> None:
        self.out.write(features[1:] if self.first else features)  # the first feature has no comma before it
        self.first = False

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows:
            self.rendering.submit(batch)

    def properties_texts(self, batch: pa.RecordBatch) -> list:
        """The pieces of each feature from its properties object to its end, `{…}}`: the JSON
        export's records, through polars when their field types allow."""
        fields = [self.fields[i] for i in self.properties]
        columns = batch.select(self.properties)
        objects = polars_objects(columns, fields, self.names, self.options["timezone"]) if self.properties else None
        if objects is not None:
            return [objects, "}"]
        return [*object_texts(columns, fields, self.names, self.options["timezone"]), "}"]

    def close(self) -> None:
        self.rendering.finish()
        self.out.write(b"]}\n" if self.first else b"\n]}\n")

    def abort(self) -> None:
        self.rendering.abort()


FORMAT = Format(
    reprojects=True,
    name="geojson",
    extension="geojson",
    media_type="application/geo+json",
    writer=GeoJsonWriter,
    needs=frozenset({"geometry"}),
    description="GeoJSON FeatureCollection (RFC 7946), coordinates in EPSG:4326.",
)
