"""Apache Parquet through pyarrow's ParquetWriter, batches gathered into row groups of up to
256k rows (or 64 MB). Types are kept:
datetimes stay timestamps (their time zone set to the `timezone` option), geo_point_2d stays
struct<lon, lat>, geo_shape stays WKB. With `use_labels` the columns take the labels.

The file describes itself twice: the `exportd` schema metadata (fields with labels, as the
dataset store writes it) and, when there is a geo_shape column, GeoParquet 1.0 `geo` file
metadata. Geometry types and bbox are only known once every batch is seen, so `geo` is added
to the footer on close (ParquetWriter.add_key_value_metadata)."""
from __future__ import annotations

from typing import Any, BinaryIO, Mapping, Sequence

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import shapely

from domain.fields import Field, with_fields
from formats.base import Format, Option, Writer, require_wgs84

COMPRESSIONS = ("snappy", "zstd", "gzip", "none")
# Batches are held until a row group is this big: per row group costs made 16k-row groups
# half as fast as write_table, and readers prefer fewer, larger groups (memory stays bounded).
ROW_GROUP_ROWS = 256 * 1024
ROW_GROUP_BYTES = 64 << 20
GEOPARQUET_VERSION = "1.0.0"
# shapely type ids → GeoParquet geometry type names (a LinearRing is a LineString in WKB).
TYPE_NAMES = ("Point", "LineString", "LineString", "Polygon", "MultiPoint", "MultiLineString",
              "MultiPolygon", "GeometryCollection")


class GeoColumn:
    """What GeoParquet wants to know of one WKB column, gathered batch by batch."""

    def __init__(self) -> None:
        self.types: set[str] = set()
        self.bbox = [np.inf, np.inf, -np.inf, -np.inf]

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
        self.geo = {i: GeoColumn() for i, f in enumerate(self.fields) if f.type == "geo_shape"}
        if self.geo:
            require_wgs84(options, "parquet")
        types = [pa.timestamp("us", tz=options["timezone"]) if f.type == "datetime" else column.type
                 for f, column in zip(self.fields, schema)]
        out_fields = [Field(name, f.type, f.label) for name, f in zip(names, self.fields)]
        self.out_schema = with_fields(pa.schema(list(zip(names, types))), out_fields)
        self._parquet = pq.ParquetWriter(out, self.out_schema, compression=options["parquet_compression"])
        self.pending: list[pa.RecordBatch] = []
        self.pending_rows = self.pending_bytes = 0

    def write(self, batch: pa.RecordBatch) -> None:
        for i, geo in self.geo.items():
            geo.add(batch.column(i))
        columns = [batch.column(i).cast(t) for i, t in enumerate(self.out_schema.types)]
        self.pending.append(pa.record_batch(columns, schema=self.out_schema))
        self.pending_rows += batch.num_rows
        self.pending_bytes += batch.nbytes
        if self.pending_rows >= ROW_GROUP_ROWS or self.pending_bytes >= ROW_GROUP_BYTES:
            self._flush()

    def _flush(self) -> None:
        """The batches held, as one row group."""
        if self.pending:
            self._parquet.write_table(pa.Table.from_batches(self.pending, self.out_schema), row_group_size=self.pending_rows)
        self.pending, self.pending_rows, self.pending_bytes = [], 0, 0

    def close(self) -> None:
        self._flush()
        if self.geo:
            names = self.out_schema.names
            self._parquet.add_key_value_metadata({"geo": orjson.dumps({
                "version": GEOPARQUET_VERSION,
                "primary_column": names[min(self.geo)],
                "columns": {names[i]: geo.metadata() for i, geo in self.geo.items()},
            }).decode()})
        self._parquet.close()


FORMAT = Format(
    name="parquet",
    extension="parquet",
    media_type="application/vnd.apache.parquet",
    writer=ParquetFileWriter,
    binary=True,
    options=(
        Option("parquet_compression", "choice", "snappy", choices=COMPRESSIONS, description="Column chunk compression codec."),
    ),
    description="Apache Parquet, types kept; GeoParquet 1.0 metadata when there is a geo_shape.",
)
