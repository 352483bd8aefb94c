"""Alternative exports: static files attached to a dataset (uploaded through /files/ and named
by their odsfile:// url), listed, created, retrieved, deleted and downloaded. Uids are `ae_` and
hex, as the platform's."""
from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass
from typing import Any

import orjson
from redis.asyncio import Redis

from domain import keys
from domain.errors import NotFound
from domain.files import StoredFile
from domain.timeutil import iso, now


@dataclass
class AlternativeExport:
    export_uid: str
    url: str
    file_id: str
    filename: str
    mimetype: str
    created: str

    def view(self) -> dict[str, Any]:
        return {"export_uid": self.export_uid, "url": self.url, "filename": self.filename,
                "mimetype": self.mimetype, "created": self.created}


class AlternativeExports:
    def __init__(self, redis: Redis):
        self.redis = redis

    async def create(self, uid: str, url: str, stored: StoredFile) -> AlternativeExport:
        export = AlternativeExport("ae_" + secrets.token_hex(3), url, stored.file_id, stored.filename,
                                   stored.mimetype, iso(now()) or "")
        while not await self.redis.hsetnx(keys.alternative_exports(uid), export.export_uid, orjson.dumps(asdict(export))):
            export.export_uid = "ae_" + secrets.token_hex(3)
        return export

    async def list(self, uid: str) -> list[AlternativeExport]:
        raw = await self.redis.hgetall(keys.alternative_exports(uid))
        return sorted((AlternativeExport(**orjson.loads(r)) for r in raw.values()), key=lambda e: (e.created, e.export_uid))

    async def get(self, uid: str, export_uid: str) -> AlternativeExport:
        raw = await self.redis.hget(keys.alternative_exports(uid), export_uid)
        if raw is None:
            raise NotFound(f"no alternative export {export_uid!r} in this dataset")
        return AlternativeExport(**orjson.loads(raw))

    async def delete(self, uid: str, export_uid: str) -> None:
        if not await self.redis.hdel(keys.alternative_exports(uid), export_uid):
            raise NotFound(f"no alternative export {export_uid!r} in this dataset")
