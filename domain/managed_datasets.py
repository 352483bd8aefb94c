"""Datasets as the management API sees them: found by their dataset_uid (fixed for life), with
metadata, a history of changes, resources naming uploaded files, and saved versions.

The dataset itself stays a domain.datasets.Dataset, keyed by dataset_id (what the Explore API
and exports use); an index maps each uid to its id. A dataset created here is unpublished and
has no records until a publish job gives it a version; its dataset_id may change only while it
is unpublished.
"""
from __future__ import annotations

import codecs

import secrets
from dataclasses import dataclass, field
from typing import Any

import orjson
from redis.asyncio import Redis

from domain import keys
from domain.datasets import DATASET_ID, Dataset, DatasetRepo, new_uid
from domain.errors import Conflict, Invalid, NotFound
from domain.fields import TYPES
from domain.metadata import merged
from domain.resources.spec import RESOURCE_TYPES
from domain.timeutil import iso, now

MAX_CHANGES = 500


def check_dataset_id(dataset_id: Any) -> str:
    if not isinstance(dataset_id, str) or not DATASET_ID.match(dataset_id):
        raise Invalid("dataset_id must be 1-100 lower-case letters, digits, - and _, starting with a letter or digit")
    return dataset_id


@dataclass
class Resource:
    resource_uid: str
    url: str
    file_id: str
    title: str
    type: str | None  # None: sniffed from the file when published
    params: dict[str, Any] = field(default_factory=dict)
    created: str = ""


def validated_resource_params(type_: Any, params: Any) -> tuple[str | None, dict[str, Any]]:
    if type_ is not None and type_ not in RESOURCE_TYPES:
        raise Invalid(f"resource type must be one of {', '.join(RESOURCE_TYPES)} (or absent: sniffed)")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise Invalid("'params' must be an object")
    overrides = params.get("fields", {})
    if not isinstance(overrides, dict) or not all(isinstance(t, str) and t in TYPES for t in overrides.values()):
        raise Invalid(f"params.fields must map field names to types among {', '.join(TYPES)}")
    for name in ("delimiter", "separator"):
        if name in params and (not isinstance(params[name], str) or len(params[name]) != 1):
            raise Invalid(f"params.{name} must be one character")
    unknown = sorted(set(params) - RESOURCE_PARAMS)
    if unknown:
        raise Invalid(f"unknown params {', '.join(map(repr, unknown))}; known: {', '.join(sorted(RESOURCE_PARAMS))}")
    if "encoding" in params:
        text_encoding(params["encoding"])
    header_row = params.get("header_row", 1)
    if isinstance(header_row, bool) or not isinstance(header_row, int) or not 0 <= header_row <= 1_000_000:
        raise Invalid("params.header_row must be 0 (no header) or a 1-based row number")
    for name in ("sheet", "lat_field", "lon_field"):
        if name in params and (not isinstance(params[name], str) or not 0 < len(params[name]) <= 256):
            raise Invalid(f"params.{name} must be a name of 1 to 256 characters")
    return type_, params


RESOURCE_PARAMS = frozenset({"fields", "delimiter", "separator", "encoding", "header_row", "sheet", "lat_field", "lon_field"})


def text_encoding(name: Any) -> str:
    """`name` if Python's codecs know it as a text encoding (not rot13, base64 or zlib, which
    would only fail when the resource is read at publish), else Invalid."""
    if not isinstance(name, str) or not name or len(name) > 64:
        raise Invalid("params.encoding must be the name of a text encoding, e.g. utf-8 or cp1252")
    try:
        info = codecs.lookup(name)
    except LookupError:
        raise Invalid(f"params.encoding: unknown encoding {name!r}") from None
    if not getattr(info, "_is_text_encoding", True) or info.name == "undefined":
        raise Invalid(f"params.encoding: {name!r} is not a text encoding")
    return name


class ManagedDatasets:
    def __init__(self, redis: Redis):
        self.redis = redis
        self.datasets = DatasetRepo(redis)

    # -- finding -----------------------------------------------------------------------------

    async def by_uid(self, uid: str) -> Dataset:
        dataset_id = await self.redis.get(keys.dataset_uid(uid))
        if dataset_id is not None:
            try:
                dataset = await self.datasets.get(dataset_id)
                if dataset.dataset_uid == uid:
                    return dataset
            except NotFound:
                pass
        for dataset in await self.datasets.list():  # datasets loaded by the operator command have no index entry yet
            if dataset.dataset_uid == uid:
                await self.redis.set(keys.dataset_uid(uid), dataset.dataset_id)
                return dataset
        raise NotFound(f"no dataset {uid!r}", error_code="unknown_dataset")

    async def page(self, limit: int, offset: int) -> tuple[int, list[Dataset]]:
        everything = await self.datasets.list()
        return len(everything), everything[offset: offset + limit]

    # -- changing ------------------------------------------------------------------------------

    async def create(self, dataset_id: str | None, metadata: dict[str, Any], user: str) -> Dataset:
        uid = new_uid()
        while await self.redis.exists(keys.dataset_uid(uid)):
            uid = new_uid()
        if dataset_id is None:
            dataset_id = uid.replace("_", "-")
        check_dataset_id(dataset_id)
        moment = iso(now()) or ""
        rest = {k: v for k, v in metadata.items() if k not in ("title", "description")}
        dataset = Dataset(dataset_id=dataset_id, dataset_uid=uid, title=metadata.get("title") or dataset_id,
                          description=metadata.get("description", ""), fields=[], records_count=0, version="",
                          data_key="", created=moment, modified=moment, published=False, metadata=rest)
        if not await self.redis.set(keys.dataset(dataset_id), dataset.to_json(), nx=True):
            raise Conflict(f"a dataset {dataset_id!r} exists", error_code="dataset_id_taken")
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(keys.DATASETS, {dataset_id: now().timestamp()}, nx=True)
            pipe.set(keys.dataset_uid(uid), dataset_id)
            await pipe.execute()
        await self.record_change(uid, user, "created", {"dataset_id": dataset_id})
        return dataset

    async def update(self, dataset: Dataset, user: str, dataset_id: str | None, metadata: dict[str, Any] | None) -> Dataset:
        """New metadata (merged), and a new dataset_id while unpublished (else 409)."""
        details: dict[str, Any] = {}
        if metadata:
            merged(dataset, metadata)
            details["metadata"] = sorted(metadata)
        old_id = dataset.dataset_id
        if dataset_id is not None and dataset_id != old_id:
            check_dataset_id(dataset_id)
            if dataset.published:
                raise Conflict("dataset_id can change only while the dataset is unpublished; unpublish it first",
                               error_code="dataset_published")
            dataset.dataset_id = dataset_id
            details["dataset_id"] = {"from": old_id, "to": dataset_id}
        dataset.modified = iso(now()) or ""
        if dataset.dataset_id == old_id:
            await self.redis.set(keys.dataset(old_id), dataset.to_json())
        else:
            if not await self.redis.set(keys.dataset(dataset.dataset_id), dataset.to_json(), nx=True):
                raise Conflict(f"a dataset {dataset.dataset_id!r} exists", error_code="dataset_id_taken")
            score = await self.redis.zscore(keys.DATASETS, old_id) or now().timestamp()
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(keys.dataset(old_id))
                pipe.zrem(keys.DATASETS, old_id)
                pipe.zadd(keys.DATASETS, {dataset.dataset_id: score})
                pipe.set(keys.dataset_uid(dataset.dataset_uid), dataset.dataset_id)
                await pipe.execute()
        if details:
            await self.record_change(dataset.dataset_uid, user, "updated", details)
        return dataset

    async def save_data(self, uid: str, **values: Any) -> Dataset:
        """Set the data fields of the dataset (data_key, records_count, fields, version,
        published), keeping whatever metadata was changed meanwhile."""
        dataset = await self.by_uid(uid)
        for name, value in values.items():
            if name == "extra":
                dataset.extra.update(value)
            else:
                setattr(dataset, name, value)
        dataset.modified = iso(now()) or ""
        await self.datasets.save(dataset)
        return dataset

    async def delete(self, dataset: Dataset) -> None:
        uid = dataset.dataset_uid
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.dataset(dataset.dataset_id), keys.dataset_uid(uid), keys.dataset_status(uid),
                        keys.dataset_changes(uid), keys.dataset_resources(uid), keys.dataset_versions(uid),
                        keys.alternative_exports(uid), keys.realtime_log(uid), keys.realtime_seq(uid))
            pipe.zrem(keys.DATASETS, dataset.dataset_id)
            await pipe.execute()

    # -- changes -----------------------------------------------------------------------------

    async def record_change(self, uid: str, user: str, kind: str, details: dict[str, Any] | None = None) -> None:
        change = {"change_uid": "ch_" + secrets.token_hex(6), "timestamp": iso(now()), "user": user, "type": kind,
                  "details": details or {}}
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.rpush(keys.dataset_changes(uid), orjson.dumps(change))
            pipe.ltrim(keys.dataset_changes(uid), -MAX_CHANGES, -1)
            await pipe.execute()

    async def changes(self, uid: str) -> list[dict[str, Any]]:
        return [orjson.loads(c) for c in await self.redis.lrange(keys.dataset_changes(uid), 0, -1)]

    # -- resources -----------------------------------------------------------------------------

    async def add_resource(self, uid: str, resource: Resource) -> None:
        await self.redis.hset(keys.dataset_resources(uid), resource.resource_uid, orjson.dumps(resource.__dict__))

    async def resources(self, uid: str) -> list[Resource]:
        raw = await self.redis.hgetall(keys.dataset_resources(uid))
        return sorted((Resource(**orjson.loads(r)) for r in raw.values()), key=lambda r: (r.created, r.resource_uid))

    async def resource(self, uid: str, resource_uid: str) -> Resource:
        raw = await self.redis.hget(keys.dataset_resources(uid), resource_uid)
        if raw is None:
            raise NotFound(f"no resource {resource_uid!r} in this dataset")
        return Resource(**orjson.loads(raw))

    async def delete_resource(self, uid: str, resource_uid: str) -> None:
        if not await self.redis.hdel(keys.dataset_resources(uid), resource_uid):
            raise NotFound(f"no resource {resource_uid!r} in this dataset")

    # -- saved versions ------------------------------------------------------------------------

    async def add_version(self, uid: str, version: dict[str, Any]) -> None:
        await self.redis.hset(keys.dataset_versions(uid), version["version_uid"], orjson.dumps(version))

    async def versions(self, uid: str) -> list[dict[str, Any]]:
        raw = await self.redis.hgetall(keys.dataset_versions(uid))
        return sorted((orjson.loads(v) for v in raw.values()), key=lambda v: (v["created"], v["version_uid"]))
