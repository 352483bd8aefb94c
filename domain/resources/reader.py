"""Reading a resource's rows in its fields' types, batch by batch, telling the rows that
could not be converted and why."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa

from domain.errors import Invalid
from domain.fields import ARROW_TYPES, Field, with_fields
from domain.resources.convert import EXPECTED, Converted, convert, point_from_pair
from domain.resources.pairs import find_pair
from domain.resources.source import Source, open_source
from domain.resources.spec import Column, RawChunk, ReadBatch, Rejected, ResourceSpec

SHOWN_VALUE = 60  # characters of a refused value quoted in a reason


def schema_of(fields: list[Field]) -> pa.Schema:
    """The Arrow schema of a resource's batches: each field in its type's Arrow type, the
    fields in the metadata (domain.fields.with_fields)."""
    return with_fields(pa.schema([pa.field(f.name, ARROW_TYPES[f.type]) for f in fields]), fields)


def read(path: Path, spec: ResourceSpec, fields: list[Field], batch_rows: int = 65_536) -> Iterator[ReadBatch]:
    """The resource's rows in batches of up to `batch_rows` source rows, converted to `fields`.

    A field is read from the column of the same name (see domain.resources.names); a
    geo_point_2d field no column holds is built from the lat/lon pair. A row with a value that
    cannot be converted to its field's type is left out of the batch and listed in its
    `rejected`, with every reason; an empty value is null."""
    if batch_rows < 1:
        raise ValueError("batch_rows must be at least 1")
    schema = schema_of(fields)
    source = open_source(path, spec)
    pair: tuple[Column, Column] | None = None
    checked = False
    for chunk in source.chunks(batch_rows):
        if not checked:
            pair = _check(source, fields, spec)
            checked = True
        yield _convert(chunk, fields, schema, pair)


def _check(source: Source, fields: list[Field], spec: ResourceSpec) -> tuple[Column, Column] | None:
    """The lat/lon pair if a geo_point_2d field needs one; Invalid if a field has no column
    (except in GeoJSON, where a property may appear in any feature)."""
    names = {c.name for c in source.columns}
    pair = None
    for field in fields:
        if field.name in names:
            continue
        if field.type == "geo_point_2d" and pair is None:
            pair = find_pair(source.columns, spec)
            if pair is not None:
                continue
        if not source.open_columns:
            raise Invalid(f"no column for field {field.name!r}; columns: {', '.join(sorted(names))}")
    return pair


def _convert(chunk: RawChunk, fields: list[Field], schema: pa.Schema, pair: tuple[Column, Column] | None) -> ReadBatch:
    n = chunk.num_rows
    arrays = []
    reasons: dict[int, list[str]] = defaultdict(list)
    for field in fields:
        raw = chunk.columns.get(field.name)
        if raw is not None:
            converted = convert(raw, field.type)
            if converted.bad.any():
                for i in np.flatnonzero(converted.bad):
                    reasons[int(i)].append(f"{field.name}: {_shown(raw[i].as_py())} is not {EXPECTED[field.type]}")
        elif field.type == "geo_point_2d" and pair is not None:
            lat, lon = chunk.columns[pair[0].name], chunk.columns[pair[1].name]
            converted = point_from_pair(lat, lon)
            for i in np.flatnonzero(converted.bad):
                reasons[int(i)].append(f"{field.name}: {pair[0].name} {_shown(lat[i].as_py())} and "
                                       f"{pair[1].name} {_shown(lon[i].as_py())} are not a point "
                                       "(two numbers, -90 <= lat <= 90, -180 <= lon <= 180)")
        else:
            converted = Converted(pa.nulls(n, ARROW_TYPES[field.type]), np.zeros(n, dtype=bool))
        arrays.append(converted.values)
    batch = pa.RecordBatch.from_arrays(arrays, schema=schema)
    rejected = list(chunk.rejected)
    if reasons:
        keep = np.ones(n, dtype=bool)
        keep[list(reasons)] = False
        batch = batch.filter(pa.array(keep))
        rejected += [Rejected(chunk.row_numbers[i], "; ".join(why)) for i, why in reasons.items()]
        rejected.sort(key=lambda r: r.row_number)
    return ReadBatch(batch, rejected)


def _shown(value: object) -> str:
    if value is None or value == "":
        return "(empty)"
    text = repr(value)
    return text if len(text) <= SHOWN_VALUE else text[: SHOWN_VALUE - 1] + "…"
