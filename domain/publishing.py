"""Building a dataset version: the blocking part of the publish and recover jobs, run in a
worker thread. No Redis.

Publish reads every resource with domain.resources (sniffed type, inferred field types, the
resource's own overrides), lines the resources up on the union of their fields (the first
resource to name a field gives its type; a field a resource lacks is null in its rows) and
streams the rows into one Parquet file through Storage.writing: it appears only when whole.
Rows that cannot be read are left out, counted, and reported with the resource and the row
number where a person finds them. Recovery copies the published version and appends pushed
realtime records converted to the dataset's fields.

A set `cancel` event stops the build between batches (Cancelled), leaving nothing behind.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from domain.errors import Invalid
from domain.fields import Field
from domain.resources import ReadBatch, Rejected, ResourceSpec, infer, read, schema_of, sniff
from domain.resources.convert import EXPECTED, convert
from domain.storage import Storage

BATCH_ROWS = 10_000  # rows per read batch: the granularity of progress and of abort
MAX_REPORTED = 1000  # rejected rows listed (all are counted)


class Cancelled(Exception):
    """The job was asked to stop."""


@dataclass
class Build:
    """Shared between the building thread and the job: the thread counts, the job reports
    and may ask it to stop."""

    records_done: int = 0
    rejected_count: int = 0
    sources_done: int = 0
    sources_total: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    cancel: threading.Event = field(default_factory=threading.Event)

    def progress(self) -> dict[str, Any]:
        return {"records_done": self.records_done, "rejected_rows": self.rejected_count,
                "resources_done": self.sources_done, "resources_total": self.sources_total}

    def reject(self, source: str, rejected: Iterable[Rejected]) -> None:
        for r in rejected:
            self.rejected_count += 1
            if len(self.errors) < MAX_REPORTED:
                self.errors.append({"resource": source, "row_number": r.row_number, "reason": r.reason})


@dataclass(frozen=True)
class Part:
    """One source of rows: a name for reports, its fields as it describes them, and a reader
    of its rows in given fields' types."""

    name: str
    fields: list[Field]
    reader: Callable[[list[Field]], Iterator[ReadBatch]]


def resource_part(name: str, path: Path, type_: str | None, params: dict[str, Any]) -> Part:
    """A resource as a part: its type sniffed when not given (given parameters win over
    sniffed ones; a CSV's missing delimiter or encoding is sniffed by the reader), its fields
    inferred, then overridden by params["fields"]."""
    if type_ is None:
        sniffed = sniff(path)
        spec = ResourceSpec(sniffed.type, {**sniffed.params, **params})
    else:
        spec = ResourceSpec(type_, params)
    return Part(name, infer(path, spec), lambda fields: read(path, spec, fields, batch_rows=BATCH_ROWS))


def union_fields(parts: list[Part]) -> list[Field]:
    """Every part's fields, once each; the first part naming a field gives its type and label."""
    seen: dict[str, Field] = {}
    for part in parts:
        for f in part.fields:
            seen.setdefault(f.name, f)
    return list(seen.values())


def write_version(storage: Storage, key: str, parts: list[Part], fields: list[Field], build: Build) -> int:
    """Write the parts' rows as one Parquet file under `key`, aligned on `fields`; answers
    the number of records written."""
    schema = schema_of(fields)
    build.sources_total = len(parts)
    with storage.writing(key) as out:
        writer = pq.ParquetWriter(out, schema, compression="zstd")
        try:
            types = {f.name: f.type for f in fields}
            for part in parts:
                own = [Field(f.name, types[f.name], f.label) for f in part.fields if f.name in types]
                for read_batch in part.reader(own):
                    if build.cancel.is_set():
                        raise Cancelled()
                    batch = _aligned(read_batch.batch, schema)
                    if batch.num_rows:
                        writer.write_batch(batch)
                    build.records_done += batch.num_rows
                    build.reject(part.name, read_batch.rejected)
                build.sources_done += 1
            if build.cancel.is_set():
                raise Cancelled()
        finally:
            writer.close()
    return build.records_done


def _aligned(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    names = batch.schema.names
    columns = []
    for target in schema:
        if target.name in names:
            column = batch.column(names.index(target.name))
            columns.append(column if column.type == target.type else column.cast(target.type))
        else:
            columns.append(pa.nulls(batch.num_rows, target.type))
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def version_part(name: str, path: Path, fields: list[Field]) -> Part:
    """A published version's rows, as they are."""
    def batches(_: list[Field]) -> Iterator[ReadBatch]:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS):
            yield ReadBatch(batch, [])
    return Part(name, fields, batches)


def pushed_part(name: str, entries: list[tuple[int, dict[str, Any]]], fields: list[Field]) -> Part:
    """Pushed realtime records ([seq, record]) converted to the dataset's fields; a record with
    an unknown field or a value of the wrong type is rejected with its sequence number."""
    schema = schema_of(fields)
    known = {f.name for f in fields}

    def batches(_: list[Field]) -> Iterator[ReadBatch]:
        for start in range(0, len(entries), BATCH_ROWS):
            chunk = entries[start: start + BATCH_ROWS]
            reasons: dict[int, list[str]] = {}
            for i, (_, record) in enumerate(chunk):
                unknown = sorted(set(record) - known)
                if unknown:
                    reasons.setdefault(i, []).append(f"unknown field(s) {', '.join(unknown)}")
            arrays = []
            for f in fields:
                texts = pa.array([_as_text(record.get(f.name)) for _, record in chunk], pa.string())
                converted = convert(texts, f.type)
                for i in np.flatnonzero(converted.bad):
                    reasons.setdefault(int(i), []).append(f"{f.name}: {texts[int(i)].as_py()!r} is not {EXPECTED[f.type]}")
                arrays.append(converted.values)
            batch = pa.RecordBatch.from_arrays(arrays, schema=schema)
            if reasons:
                keep = np.ones(len(chunk), dtype=bool)
                keep[list(reasons)] = False
                batch = batch.filter(pa.array(keep))
            yield ReadBatch(batch, [Rejected(chunk[i][0], "; ".join(r)) for i, r in sorted(reasons.items())])
    return Part(name, fields, batches)


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict) and set(value) >= {"lat", "lon"} and "type" not in value:
        return f"{value['lat']},{value['lon']}"
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
        return f"{value[0]},{value[1]}"  # [lat, lon], as the platform's push API
    if isinstance(value, (dict, list)):
        return orjson.dumps(value).decode()  # a GeoJSON geometry
    return str(value)


def check_fields(fields: list[Field]) -> None:
    if not fields:
        raise Invalid("the resources hold no columns")
