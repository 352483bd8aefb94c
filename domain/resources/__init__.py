"""Dataset resources: a CSV, GeoJSON, Parquet or XLSX file read into Arrow record batches in
exportd's field types (domain.fields), streamed.

    spec = sniff(path)                     # type, and a CSV's delimiter and encoding
    fields = infer(path, spec)             # field types from a sample, overrides applied
    for part in read(path, spec, fields):  # ReadBatch: converted rows, rejected rows
        ...

Modules: spec (ResourceSpec, ReadBatch, Rejected, RawChunk), sniff, names (field names from
column labels), one source per file type (csv_source, xlsx_source, parquet_source,
geojson_source) yielding raw chunks, convert (text and typed columns into each field type),
pairs (the lat/lon pair of a point), infer, reader.
"""
from __future__ import annotations

from domain.resources.infer import infer
from domain.resources.reader import read, schema_of
from domain.resources.sniff import sniff
from domain.resources.spec import ReadBatch, Rejected, ResourceSpec

__all__ = ["ReadBatch", "Rejected", "ResourceSpec", "infer", "read", "schema_of", "sniff"]
