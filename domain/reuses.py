"""Reuses (applications, articles, visualisations built on a dataset) and feedback from its
users to its publisher, kept per dataset uid in Redis."""
from __future__ import annotations

import secrets
from typing import Any

import orjson
from redis.asyncio import Redis

from domain import keys
from domain.errors import Invalid, NotFound
from domain.timeutil import iso, now

REUSE_FIELDS = {"title": True, "url": True, "description": False, "type": False, "image": False, "author": False}
FEEDBACK_FIELDS = {"title": True, "message": True, "contact": False}
MAX_TEXT = 10_000


def _checked(body: dict[str, Any], spec: dict[str, bool], what: str) -> dict[str, str]:
    unknown = sorted(set(body) - set(spec))
    if unknown:
        raise Invalid(f"unknown {what} field(s): {', '.join(unknown)}; known: {', '.join(spec)}")
    out = {}
    for name, required in spec.items():
        value = body.get(name)
        if value is None or value == "":
            if required:
                raise Invalid(f"the {what} field {name!r} is required")
            continue
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            raise Invalid(f"the {what} field {name!r} must be text of at most {MAX_TEXT} characters")
        out[name] = value
    return out


class Reuses:
    def __init__(self, redis: Redis):
        self.redis = redis

    async def add(self, uid: str, body: dict[str, Any]) -> dict[str, Any]:
        reuse = {"reuse_id": "re_" + secrets.token_hex(4), **_checked(body, REUSE_FIELDS, "reuse"), "created": iso(now())}
        await self.redis.hset(keys.reuses(uid), reuse["reuse_id"], orjson.dumps(reuse))
        return reuse

    async def list(self, uid: str) -> list[dict[str, Any]]:
        raw = await self.redis.hgetall(keys.reuses(uid))
        return sorted((orjson.loads(r) for r in raw.values()), key=lambda r: (r["created"], r["reuse_id"]))

    async def get(self, uid: str, reuse_id: str) -> dict[str, Any]:
        raw = await self.redis.hget(keys.reuses(uid), reuse_id)
        if raw is None:
            raise NotFound(f"no reuse {reuse_id!r} of this dataset")
        return orjson.loads(raw)


class Feedback:
    def __init__(self, redis: Redis):
        self.redis = redis

    async def add(self, uid: str, body: dict[str, Any], sender: str | None) -> dict[str, Any]:
        entry = {"feedback_id": "fb_" + secrets.token_hex(4), **_checked(body, FEEDBACK_FIELDS, "feedback"),
                 "sender": sender, "created": iso(now())}
        await self.redis.rpush(keys.feedback(uid), orjson.dumps(entry))
        return entry

    async def list(self, uid: str) -> list[dict[str, Any]]:
        return [orjson.loads(r) for r in await self.redis.lrange(keys.feedback(uid), 0, -1)]
