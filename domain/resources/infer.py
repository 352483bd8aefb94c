"""Inferring a resource's fields from a sample of its rows.

Each text column takes the first type of INFERRED_TYPES that reads every non-empty sampled
value (strictly: see domain.resources.convert), else text; a typed column (Parquet, a GeoJSON
geometry) keeps its type. A latitude/longitude column pair adds a geo_point_2d field named
geo_point_2d, the two columns staying. Types given in the `fields` parameter win.
"""
from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from domain.errors import Invalid
from domain.fields import TYPES, Field, type_of
from domain.resources.convert import convert, point_from_pair
from domain.resources.names import lookup
from domain.resources.pairs import POINT_FIELD, given_pair, named_pair
from domain.resources.source import open_source
from domain.resources.spec import Column, ResourceSpec

# int before boolean: a column of 0 and 1 is an int column.
INFERRED_TYPES = ("int", "double", "boolean", "date", "datetime", "geo_point_2d", "geo_shape")


def infer(path: Path, spec: ResourceSpec, sample_rows: int = 10_000) -> list[Field]:
    """The fields of the resource at `path`, their types inferred from its first `sample_rows`
    rows, then overridden by `spec.params["fields"]`."""
    source = open_source(path, spec)
    samples: dict[str, list[pa.Array]] = {}
    seen = 0
    chunks = source.chunks(max(1, min(sample_rows, 65_536)))
    try:
        for chunk in chunks:
            take = min(chunk.num_rows, sample_rows - seen)
            for name, array in chunk.columns.items():
                samples.setdefault(name, []).append(array.slice(0, take))
            seen += take
            if seen >= sample_rows:
                break
    finally:
        chunks.close()
    columns = source.columns
    described = getattr(source, "described", {})
    sample = {name: pa.concat_arrays(arrays) for name, arrays in samples.items() if arrays}
    fields = []
    for column in columns:
        known = described.get(column.name)
        if known is not None:
            fields.append(Field(column.name, known.type, known.label if known.label != known.name else column.label))
        else:
            fields.append(Field(column.name, _infer_type(sample.get(column.name)), column.label))
    fields += _point_field(columns, fields, sample, spec)
    return _overridden(fields, spec)


def _infer_type(sample: pa.Array | None) -> str:
    if sample is None:
        return "text"
    if not (pa.types.is_string(sample.type) or pa.types.is_large_string(sample.type)):
        try:
            candidate = type_of(sample.type)
        except ValueError:
            return "text"  # lists, maps…: held as JSON text
        return candidate if not convert(sample, candidate).bad.any() else "text"
    present = len(sample) - convert(sample, "text").values.null_count
    if present == 0:
        return "text"
    for candidate in INFERRED_TYPES:
        if not convert(sample, candidate, strict=True).bad.any():
            return candidate
    return "text"


def _point_field(columns: list[Column], fields: list[Field], sample: dict[str, pa.Array], spec: ResourceSpec) -> list[Field]:
    """The geo_point_2d field a lat/lon pair makes: always when the parameters name the pair;
    when found by names, only if both columns are numbers and every sampled pair is a point."""
    if any(f.name == POINT_FIELD for f in fields):
        return []
    pair = given_pair(columns, spec)
    if pair is not None:
        return [Field(POINT_FIELD, "geo_point_2d")]
    pair = named_pair(columns)
    if pair is None:
        return []
    types = {f.name: f.type for f in fields}
    lat, lon = pair
    if types[lat.name] not in ("int", "double") or types[lon.name] not in ("int", "double"):
        return []
    if lat.name in sample and lon.name in sample and point_from_pair(sample[lat.name], sample[lon.name]).bad.any():
        return []
    return [Field(POINT_FIELD, "geo_point_2d")]


def _overridden(fields: list[Field], spec: ResourceSpec) -> list[Field]:
    overrides = spec.param("fields") or {}
    if not isinstance(overrides, dict):
        raise Invalid('the "fields" parameter must map field names to types')
    out = list(fields)
    columns = [Column(f.name, f.label) for f in fields]
    for key, type_ in overrides.items():
        if type_ not in TYPES:
            raise Invalid(f"unknown type {type_!r} for field {key!r}; expected one of {', '.join(TYPES)}")
        column = lookup(columns, key)
        if column is None:
            raise Invalid(f"no field {key!r} to give a type to; fields: {', '.join(f.name for f in fields)}")
        i = columns.index(column)
        out[i] = Field(out[i].name, type_, out[i].label)
    return out
