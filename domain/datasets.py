"""Datasets: their metadata in Redis, their records as one Parquet file per version in storage,
and the import of a CSV or Parquet file into such a version."""
from __future__ import annotations

import functools
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.dataset as pads
import pyarrow.parquet as pq
from redis.asyncio import Redis

from domain import keys
from domain.errors import Invalid, NotFound
from domain.fields import ARROW_TYPES, GEO_POINT, Field, fields_of, type_of, with_fields
from domain.storage import Storage
from domain.timeutil import iso, now
from domain.version_cache import HeldVersions

DATASET_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
BATCH_ROWS = 64 * 1024
HELD = HeldVersions()  # this process's small versions, decoded


@dataclass
class Dataset:
    dataset_id: str
    dataset_uid: str
    title: str
    fields: list[Field]
    records_count: int
    version: str
    data_key: str  # storage key of the published version's Parquet file
    description: str = ""
    visibility: str = "domain"  # "domain": public; "restricted": administrators only
    created: str = ""
    modified: str = ""
    extra: dict = field(default_factory=dict)
    published: bool = True  # False: hidden from the Explore API (management API unpublish, or never published)
    metadata: dict = field(default_factory=dict)  # keywords, license, … (management API; title/description above)

    def to_json(self) -> bytes:
        # not dataclasses.asdict, which deep-copied every value, the fields only to be replaced
        return orjson.dumps({**vars(self), "fields": [f.as_dict() for f in self.fields]})

    @classmethod
    def from_json(cls, raw: str | bytes) -> "Dataset":
        data = orjson.loads(raw)
        data["fields"] = [Field(**f) for f in data["fields"]]
        return cls(**data)


class DatasetRepo:
    def __init__(self, redis: Redis):
        self.redis = redis

    async def save(self, dataset: Dataset) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.dataset(dataset.dataset_id), dataset.to_json())
            pipe.zadd(keys.DATASETS, {dataset.dataset_id: now().timestamp()}, nx=True)
            await pipe.execute()

    async def get(self, dataset_id: str) -> Dataset:
        raw = await self.redis.get(keys.dataset(dataset_id))
        if raw is None:
            raise NotFound(f"no dataset {dataset_id!r}")
        return Dataset.from_json(raw)

    async def list(self) -> list[Dataset]:
        ids = await self.redis.zrange(keys.DATASETS, 0, -1)
        if not ids:
            return []
        raws = await self.redis.mget([keys.dataset(i) for i in ids])
        return [Dataset.from_json(r) for r in raws if r is not None]


def open_version(storage: Storage, data_key: str) -> pads.Dataset:
    """A dataset version's records, to scan with projection and filter push-down: decoded in
    memory if it is small (domain/version_cache.py), else its Parquet file. Blocking (it may
    fetch the file from a bucket): run it in a thread."""
    path = str(storage.local_path(data_key))
    return HELD.get(path) or _parquet_dataset(path)


@functools.lru_cache(maxsize=64)
def _parquet_dataset(path: str) -> pads.Dataset:
    """A version's file is never rewritten (a new version is a new key), so its dataset,
    opened once, serves every export and request of the process: a scan opens the file
    itself, even when a bucket's cached copy was fetched again meanwhile."""
    return pads.dataset(path, format="parquet")


def new_uid() -> str:
    return "da_" + secrets.token_hex(3)


def _sniff_delimiter(path: Path) -> str:
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        header = f.readline()
    return max(";,\t|", key=header.count)


def _normalise(batch: pa.RecordBatch) -> pa.RecordBatch:
    """A batch with every column in the Arrow type of its field type (see domain.fields);
    a text column named geo_point_2d holding "lat,lon" becomes a point."""
    columns = []
    for name, column in zip(batch.schema.names, batch.columns):
        if name == "geo_point_2d" and pa.types.is_string(column.type):
            column = _lat_lon_points(column)
        target = ARROW_TYPES[type_of(column.type)]
        if pa.types.is_timestamp(column.type) and column.type.tz is None:
            column = column.cast(pa.timestamp("us")).cast(pa.int64()).cast(target)
        elif column.type != target:
            column = column.cast(target)
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


def _lat_lon_points(text: pa.Array) -> pa.Array:
    parts = pc.split_pattern(pc.utf8_trim_whitespace(text), ",", max_splits=1)
    lat = pc.list_element(parts, 0).cast(pa.float64())
    lon = pc.list_element(parts, 1).cast(pa.float64())
    return pa.StructArray.from_arrays([lon, lat], fields=list(GEO_POINT), mask=pc.is_null(text))


def _batches(source: Path) -> Iterator[pa.RecordBatch]:
    suffix = source.suffix.lower()
    if suffix == ".parquet":
        yield from pq.ParquetFile(source).iter_batches(batch_size=BATCH_ROWS)
    elif suffix in (".csv", ".txt"):
        reader = pacsv.open_csv(
            source,
            read_options=pacsv.ReadOptions(block_size=8 << 20),
            parse_options=pacsv.ParseOptions(delimiter=_sniff_delimiter(source), newlines_in_values=True),
        )
        yield from reader
    else:
        raise Invalid(f"cannot load {source.name}: only .csv and .parquet files are supported")


def _labelled(inferred: list[Field], source: Path) -> list[Field]:
    """The inferred fields, with the labels a Parquet file's exportd metadata gives them."""
    if source.suffix.lower() != ".parquet":
        return inferred
    described = {f.name: f for f in fields_of(pq.read_schema(source))}
    return [Field(f.name, f.type, described[f.name].label) if f.name in described else f for f in inferred]


def import_file(source: Path, dataset_id: str, storage: Storage, title: str = "", description: str = "",
                fields: list[Field] | None = None) -> Dataset:
    """Write `source` as a new Parquet version of `dataset_id` (streamed batch by batch) and
    return the dataset it describes. Runs in a thread or a command, never on an event loop."""
    if not DATASET_ID.match(dataset_id):
        raise Invalid(f"dataset id {dataset_id!r} must be lower-case letters, digits, - and _")
    version = now().strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)
    key = f"datasets/{dataset_id}/{version}.parquet"
    count = 0
    schema = None
    with storage.writing(key) as out:
        writer = None
        for batch in _batches(source):
            batch = _normalise(batch)
            if writer is None:
                described = fields or _labelled(fields_of(batch.schema), source)
                schema = with_fields(batch.schema, described)
                writer = pq.ParquetWriter(out, schema, compression="zstd")
            writer.write_batch(batch.cast(schema) if batch.schema != schema else batch)
            count += batch.num_rows
        if writer is None:
            raise Invalid(f"{source.name} holds no columns")
        writer.close()
    assert schema is not None
    moment = iso(now()) or ""
    return Dataset(
        dataset_id=dataset_id,
        dataset_uid=new_uid(),
        title=title or dataset_id,
        description=description,
        fields=fields_of(schema),
        records_count=count,
        version=version,
        data_key=key,
        created=moment,
        modified=moment,
    )
