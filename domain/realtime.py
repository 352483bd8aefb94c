"""Realtime datasets, as far as exportd takes them.

What "realtime" means here: a dataset can be given a push key (one per dataset, shown once,
kept as a SHA-256 hash). Records pushed with it to /api/push/1.0/{dataset_uid}/push are
appended, each with a sequence number, to the dataset's recovery data: a Redis list, durable
with append-only persistence. They reach the published version through a job, not one by one:

- recover_realtime_records writes a new version: the published records plus every pushed
  record newer than the last one already applied (the dataset remembers that sequence number,
  so recovering twice adds nothing twice);
- publish rebuilds the version from the resources alone, as the platform's processing does,
  so pushed records then need recovering again;
- scratch_recovery_data deletes the recovery data for good; records already applied stay.
"""
from __future__ import annotations

import hashlib
import secrets
from typing import Any

import orjson
from redis.asyncio import Redis

from domain import keys
from domain.errors import Invalid, Unauthorized
from domain.timeutil import iso, now

APPLIED = "realtime_applied_seq"  # Dataset.extra: the last pushed sequence number in the published version
MAX_PUSH = 1000  # records a push request may carry


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class Realtime:
    def __init__(self, redis: Redis):
        self.redis = redis

    async def new_push_key(self, uid: str, previous_hash: str | None) -> tuple[str, str]:
        """A fresh push key for the dataset (the previous one stops working): (key, its hash)."""
        key = secrets.token_urlsafe(24)
        digest = _hash(key)
        async with self.redis.pipeline(transaction=True) as pipe:
            if previous_hash:
                pipe.delete(keys.push_key(previous_hash))
            pipe.set(keys.push_key(digest), uid)
            await pipe.execute()
        return key, digest

    async def dataset_of(self, push_key: str | None) -> str:
        uid = await self.redis.get(keys.push_key(_hash(push_key))) if push_key else None
        if uid is None:
            raise Unauthorized("a valid pushkey is required (see POST /api/management/v2/datasets/{uid}/push_key)")
        return uid

    async def push(self, uid: str, body: Any) -> int:
        records = body if isinstance(body, list) else [body]
        if not records or not all(isinstance(r, dict) for r in records):
            raise Invalid("push a JSON object (one record) or an array of objects")
        if len(records) > MAX_PUSH:
            raise Invalid(f"push at most {MAX_PUSH} records a request")
        last = await self.redis.incrby(keys.realtime_seq(uid), len(records))
        received = iso(now())
        entries = [orjson.dumps([last - len(records) + 1 + i, r, received]) for i, r in enumerate(records)]
        await self.redis.rpush(keys.realtime_log(uid), *entries)
        return len(records)

    async def entries(self, uid: str, after: int) -> list[tuple[int, dict[str, Any]]]:
        out = []
        for raw in await self.redis.lrange(keys.realtime_log(uid), 0, -1):
            seq, record, _ = orjson.loads(raw)
            if seq > after:
                out.append((seq, record))
        return sorted(out, key=lambda e: e[0])

    async def count(self, uid: str) -> int:
        return await self.redis.llen(keys.realtime_log(uid))

    async def scratch(self, uid: str) -> int:
        count = await self.redis.llen(keys.realtime_log(uid))
        await self.redis.delete(keys.realtime_log(uid))
        return count
