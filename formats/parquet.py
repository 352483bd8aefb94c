"""Apache Parquet through pyarrow's ParquetWriter, batches gathered into row groups of up to
256k rows (or 64 MB), each encoded on a rendering thread (formats.parallel) while the next is
gathered. Columns
are dictionary-encoded only where values repeat (at most half distinct) and the dictionary
would fit in a dictionary page, estimated from a sample of the first row group, as polars
decides: pyarrow otherwise hashes every value of a near-unique column until its dictionary
page overflows, a third of its writing time (snappy either way, as polars' baseline). Types are kept:
datetimes stay timestamps (their time zone set to the `timezone` option), geo_point_2d stays
struct<lon, lat>, geo_shape stays WKB. With `use_labels` the columns take the labels.

The file describes itself twice: the `exportd` schema metadata (fields with labels, as the
dataset store writes it) and, when there is a geo_shape column, GeoParquet 1.0 `geo` file
metadata. Geometry types and bbox are only known once every batch is seen, so `geo` is added
to the footer on close (ParquetWriter.add_key_value_metadata)."""
from __future__ import annotations

from concurrent.futures import Future
from typing import Any, BinaryIO, Iterator, Mapping, Sequence

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import shapely

from domain.fields import Field, with_fields
from formats.base import Format, Option, Writer, require_wgs84
from formats.parallel import cancel, pool

COMPRESSIONS = ("snappy", "zstd", "gzip", "none")
# Batches are held until a row group is this big: per row group costs made 16k-row groups
# half as fast as write_table, and readers prefer fewer, larger groups (memory stays bounded).
ROW_GROUP_ROWS = 256 * 1024
ROW_GROUP_BYTES = 64 << 20
DICTIONARY_PAGE_BYTES = 1 << 20  # pyarrow's dictionary_pagesize_limit: past it a column falls back to plain
SAMPLE_ROWS = 4096  # values per column the dictionary estimate looks at
DICTIONARY_SHARE = 0.5  # a dictionary pays when values repeat: at most this share of them distinct
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


def _leaves(path: str, column: pa.ChunkedArray) -> Iterator[tuple[str, pa.Array]]:
    """The Parquet leaf columns of an Arrow column: (dotted path, values)."""
    if pa.types.is_struct(column.type):
        for i in range(column.type.num_fields):
            yield from _leaves(f"{path}.{column.type.field(i).name}", pc.struct_field(column, [i]))
    elif pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        yield from _leaves(f"{path}.list.element", pc.list_flatten(column))
    else:
        yield path, column


def _worth_a_dictionary(values: pa.ChunkedArray) -> bool:
    """Whether few enough of `values` are distinct, and their dictionary page (distinct values
    times their plain width) would fit, estimated from a sample: with c repeats among k sampled
    values, about k² / 2c distinct values (the birthday estimate); none: every value distinct."""
    present = len(values) - values.null_count
    whole = len(values) <= SAMPLE_ROWS
    sample = (values if whole else values.take(np.linspace(0, len(values) - 1, SAMPLE_ROWS).astype(np.int64))).drop_null()
    if not len(sample):
        return True
    distinct = pc.count_distinct(sample).as_py()
    repeats = len(sample) - distinct
    if not whole:
        distinct = min(present, max(distinct, len(sample) ** 2 / (2 * repeats))) if repeats else present
    if distinct > DICTIONARY_SHARE * present:
        return False
    t = values.type
    if pa.types.is_binary(t) or pa.types.is_string(t) or pa.types.is_large_binary(t) or pa.types.is_large_string(t):
        width = 4 + pc.mean(pc.binary_length(sample)).as_py()
    else:
        width = max(t.bit_width, 8) / 8
    return distinct * width <= DICTIONARY_PAGE_BYTES


def dictionary_columns(table: pa.Table) -> list[str]:
    """The leaf columns of `table` (a row group) worth dictionary-encoding."""
    return [path for name, column in zip(table.column_names, table.columns)
            for path, values in _leaves(name, column)
            if _worth_a_dictionary(values)]


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
        self._parquet: pq.ParquetWriter | None = None  # opened with the first row group, which decides the encodings
        self._encoding: Future | None = None  # the row group being written, on a rendering thread
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

    def _open(self, first: pa.Table) -> pq.ParquetWriter:
        if self._parquet is None:
            self._parquet = pq.ParquetWriter(self.out, self.out_schema, compression=self.options["parquet_compression"],
                                             use_dictionary=dictionary_columns(first) if first.num_rows else True)
        return self._parquet

    def _flush(self) -> None:
        """The batches held, as one row group, handed to the encoding thread once the one
        before is written: at most two row groups are held."""
        if self.pending:
            table = pa.Table.from_batches(self.pending, self.out_schema)
            parquet = self._open(table)
            self._wait()
            self._encoding = pool().submit(parquet.write_table, table, row_group_size=self.pending_rows)
        self.pending, self.pending_rows, self.pending_bytes = [], 0, 0

    def _wait(self) -> None:
        if self._encoding is not None:
            encoding, self._encoding = self._encoding, None
            encoding.result()

    def close(self) -> None:
        self._flush()
        self._wait()
        parquet = self._open(self.out_schema.empty_table())
        if self.geo:
            names = self.out_schema.names
            parquet.add_key_value_metadata({"geo": orjson.dumps({
                "version": GEOPARQUET_VERSION,
                "primary_column": names[min(self.geo)],
                "columns": {names[i]: geo.metadata() for i, geo in self.geo.items()},
            }).decode()})
        parquet.close()

    def abort(self) -> None:
        """Nothing is written to `out` once this returns."""
        if self._encoding is not None:
            cancel([self._encoding])


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
