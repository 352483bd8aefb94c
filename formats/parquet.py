"""Apache Parquet through polars' streaming sink_parquet (formats.parallel.PolarsSink): the
batches are pulled by polars, which encodes columns and row groups on its own threads without
the GIL, where pyarrow's ParquetWriter encodes one column after another (its use_threads knob
is not in pyarrow's Python API). Polars chooses row groups, page sizes and dictionary encoding
as in its own baseline; snappy by default. Types are kept: datetimes stay timestamps (their
time zone set to the `timezone` option), geo_shape stays WKB, and geo_point_2d becomes WKB
points, so that GeoParquet readers (GDAL, GeoPandas, DuckDB, QGIS) see a geometry. With
`use_labels` the columns take the labels.

The file describes itself twice: the `exportd` schema metadata (fields with labels, as the
dataset store writes it) and, when there is a geometry, GeoParquet 1.1 `geo` file metadata
(every geometry column WKB, in OGC:CRS84 — lon/lat, GeoParquet's default, so no `crs` —
geo_shape the primary column where there is one). Geometry types and bbox are only known once every batch is seen: polars asks for the
footer's key-value metadata when it finishes, after the last batch. The footer's
`ARROW:schema` is pyarrow's serialization of our schema (polars would describe its strings as
large_string): the file reads back with the types and metadata pyarrow's writer gives."""
from __future__ import annotations

import base64
from typing import Any, BinaryIO, Callable, Mapping, Sequence

import numpy as np
import orjson
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import shapely

from domain.fields import METADATA_KEY, Field, with_fields
from formats.base import Format, Option, Writer
from formats.geo import point_wkb, point_xy
from formats.values import point_coords
from formats.parallel import PolarsSink

COMPRESSIONS = ("snappy", "zstd", "gzip", "none")
GEOPARQUET_VERSION = "1.1.0"
GEO_TYPES = ("geo_shape", "geo_point_2d")  # the primary column is the first of these the dataset has

# shapely type ids → GeoParquet geometry type names (a LinearRing is a LineString in WKB).
TYPE_NAMES = ("Point", "LineString", "LineString", "Polygon", "MultiPoint", "MultiLineString",
              "MultiPolygon", "GeometryCollection")


class GeoColumn:
    """What GeoParquet wants to know of one WKB column, gathered batch by batch."""

    def __init__(self) -> None:
        self.types: set[str] = set()
        self.bbox = [np.inf, np.inf, -np.inf, -np.inf]

    def add_points(self, column: pa.StructArray) -> None:
        """A geo_point_2d column's points (its struct, before it is made WKB)."""
        lon, lat = point_coords(column)
        if lon.null_count == len(lon):
            return
        self.types.add("Point")
        (low_x, high_x), (low_y, high_y) = (pc.min_max(lon).values(), pc.min_max(lat).values())
        self.bbox = [min(self.bbox[0], low_x.as_py()), min(self.bbox[1], low_y.as_py()),
                     max(self.bbox[2], high_x.as_py()), max(self.bbox[3], high_y.as_py())]

    def add(self, column: pa.Array) -> None:
        geoms = shapely.from_wkb(column.to_numpy(zero_copy_only=False))
        present = geoms[~shapely.is_missing(geoms)]
        if not len(present):
            return
        ids, has_z = shapely.get_type_id(present), shapely.has_z(present)
        self.types.update(TYPE_NAMES[i] + (" Z" if z else "") for i, z in set(zip(ids.tolist(), has_z.tolist())))
        bounds = shapely.bounds(present[~shapely.is_empty(present)])
        if len(bounds):
            self.bbox = [min(self.bbox[0], np.min(bounds[:, 0])), min(self.bbox[1], np.min(bounds[:, 1])),
                         max(self.bbox[2], np.max(bounds[:, 2])), max(self.bbox[3], np.max(bounds[:, 3]))]

    def metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"encoding": "WKB", "geometry_types": sorted(self.types)}
        if np.isfinite(self.bbox).all():
            meta["bbox"] = [float(v) for v in self.bbox]
        return meta


class ParquetFileWriter(Writer):
    def __init__(self, out: BinaryIO, schema: pa.Schema, fields: Sequence[Field], options: Mapping[str, Any]):
        super().__init__(out, schema, fields, options)
        names = self.column_names()
        self.geo = {i: GeoColumn() for i, f in enumerate(self.fields) if f.type in GEO_TYPES}
        self.points = [i for i, f in enumerate(self.fields) if f.type == "geo_point_2d"]
        types = [pa.timestamp("us", tz=options["timezone"]) if f.type == "datetime"
                 else pa.binary() if f.type == "geo_point_2d" else column.type
                 for f, column in zip(self.fields, schema)]
        out_fields = [Field(name, f.type, f.label) for name, f in zip(names, self.fields)]
        self.out_schema = with_fields(pa.schema(list(zip(names, types))), out_fields)
        self.sink: PolarsSink | None = None  # started by the first write (write_lazy needs none)
        self.wrote_lazy = False

    takes_lazy = True

    def _sink(self, frame: pl.LazyFrame) -> None:
        compression = self.options["parquet_compression"]
        frame.sink_parquet(self.out, compression="uncompressed" if compression == "none" else compression,
                           metadata=self.footer)

    def write(self, batch: pa.RecordBatch) -> None:
        if self.sink is None:
            self.sink = PolarsSink(self.out_schema, self._sink)
        self.sink.put(self._converted(batch))

    def _converted(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """The batch as the file's columns (geometries noted for the footer on the way)."""
        columns = []
        for i, t in enumerate(self.out_schema.types):
            column = batch.column(i)
            if i in self.points:
                self.geo[i].add_points(column)
                column = point_wkb(*point_xy(column))
            elif i in self.geo:
                self.geo[i].add(column)
            columns.append(column.cast(t))
        return pa.record_batch(columns, schema=self.out_schema)

    def write_lazy(self, frame: pl.LazyFrame, seen: Callable[[pl.DataFrame], None]) -> None:
        """What write does, in one polars pipeline from the scan to the file, as polars' own
        scan_parquet().sink_parquet() runs: each batch is seen (and its geometries noted for
        the footer) on its way."""
        def observe(batch: pl.DataFrame) -> pl.DataFrame:
            seen(batch)
            if not self.geo:
                return batch
            columns = []
            for i, series in enumerate(batch.get_columns()):
                if i in self.points:
                    self.geo[i].add_points(series.to_arrow())
                    series = pl.Series(series.name, point_wkb(*point_xy(series.to_arrow())), pl.Binary)
                elif i in self.geo:
                    self.geo[i].add(series.to_arrow())
                columns.append(series)
            return pl.DataFrame(columns)

        renamed = frame.select(  # frame's columns are the scan's, as Scan.lazy checked
            pl.col(old).dt.convert_time_zone(self.options["timezone"]).alias(new) if f.type == "datetime" else pl.col(old).alias(new)
            for old, new, f in zip(self.schema.names, self.out_schema.names, self.fields))
        schema = pl.Schema({name: pl.Binary if i in self.points else kind
                            for i, (name, kind) in enumerate(renamed.collect_schema().items())})
        self._sink(renamed.map_batches(observe, streamable=True, schema=schema))
        self.wrote_lazy = True

    def footer(self, _: Any) -> dict[str, str]:
        """The file's key-value metadata, asked for by polars once every batch is written."""
        meta = {"ARROW:schema": base64.b64encode(self.out_schema.serialize()).decode(),
                METADATA_KEY.decode(): self.out_schema.metadata[METADATA_KEY].decode()}
        if self.geo:
            names = self.out_schema.names
            primary = min(self.geo, key=lambda i: (GEO_TYPES.index(self.fields[i].type), i))
            meta["geo"] = orjson.dumps({
                "version": GEOPARQUET_VERSION,
                "primary_column": names[primary],
                "columns": {names[i]: geo.metadata() for i, geo in self.geo.items()},
            }).decode()
        return meta

    def close(self) -> None:
        if self.sink is None and not self.wrote_lazy:  # no record: a file of none
            self.write(pa.RecordBatch.from_pylist([], self.schema))
        if self.sink is not None:
            self.sink.finish()

    def abort(self) -> None:
        """Nothing is written to `out` once this returns."""
        if self.sink is not None:
            self.sink.abort()


FORMAT = Format(
    name="parquet",
    extension="parquet",
    media_type="application/vnd.apache.parquet",
    writer=ParquetFileWriter,
    binary=True,
    options=(
        Option("parquet_compression", "choice", "snappy", choices=COMPRESSIONS, description="Column chunk compression codec."),
    ),
    description="Apache Parquet, types kept; GeoParquet 1.1 (WKB and `geo` metadata) when there is a geometry.",
)
