"""Work that need not be done twice is not: a ready export's file is shared with every later
export of the same dataset version, query, format and options (of any user), which becomes
ready at once. Files are reference-counted, so the expiry or deletion of one export never
breaks another's link; the last one out deletes the file.

Keys: shared:<digest> → the file's storage key; sharedfile:<key> → its description (name, size,
records…); filerefs:<key> → the exports that use it.
"""
from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import orjson
from redis.asyncio import Redis

from domain import keys
from domain.storage import Storage

# KEYS[1] shared:<digest>. ARGV[1] export id, ARGV[2] the keys' prefix. Adds the export to the
# file's references and answers [file key, field, value, …], or nothing when no live file.
_JOIN = """
local key = redis.call('GET', KEYS[1])
if not key then return false end
local refs = ARGV[2] .. 'filerefs:' .. key
if redis.call('SCARD', refs) == 0 then
  redis.call('DEL', KEYS[1])
  return false
end
redis.call('SADD', refs, ARGV[1])
local out = {key}
for _, v in ipairs(redis.call('HGETALL', ARGV[2] .. 'sharedfile:' .. key)) do table.insert(out, v) end
return out
"""

# ARGV[1] file key, ARGV[2] export id, ARGV[3] prefix. Drops the reference; answers 1 when it was
# the last one (the caller deletes the file), after forgetting the file.
_RELEASE = """
local refs = ARGV[3] .. 'filerefs:' .. ARGV[1]
redis.call('SREM', refs, ARGV[2])
if redis.call('SCARD', refs) > 0 then return 0 end
local meta = ARGV[3] .. 'sharedfile:' .. ARGV[1]
local digest = redis.call('HGET', meta, 'digest')
if digest and redis.call('GET', ARGV[3] .. 'shared:' .. digest) == ARGV[1] then
  redis.call('DEL', ARGV[3] .. 'shared:' .. digest)
end
redis.call('DEL', meta, refs)
return 1
"""


def digest(dataset_id: str, version: str, query: dict[str, Any], export_type: str, options: dict[str, Any]) -> str:
    """What makes two exports the same file."""
    canonical = orjson.dumps([dataset_id, version, query, export_type, options], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


def offer(share: str, file_key: str, export_id: str, description: dict[str, Any]) -> list[list[Any]]:
    """The Redis commands that offer a ready export's file to later identical exports (run
    with its READY transition: ExportRepo.transition's `also`, so the offer stands exactly when
    the export is ready)."""
    described = [item for name, value in {**description, "digest": share}.items() for item in (name, value)]
    return [["SADD", keys.file_refs(file_key), export_id],
            ["HSET", keys.shared_file(file_key), *described],
            ["SET", keys.shared(share), file_key]]


class SharedFiles:
    def __init__(self, redis: Redis):
        self.redis = redis
        self._join = redis.register_script(_JOIN)
        self._release = redis.register_script(_RELEASE)

    async def join(self, share: str, export_id: str) -> dict[str, str] | None:
        """The live file for this digest, now also referenced by export_id; None if none."""
        found = await self._join(keys=[keys.shared(share)], args=[export_id, keys.PREFIX])
        if not found:
            return None
        key, *flat = found
        return {"file_key": key, **dict(zip(flat[::2], flat[1::2]))}

    async def release(self, file_key: str, export_id: str) -> bool:
        """Drop export_id's reference; True when nobody uses the file any more."""
        return bool(await self._release(keys=[], args=[file_key, export_id, keys.PREFIX]))


async def drop_files(shared: SharedFiles, storage: Storage, export) -> None:
    """Whatever files an export leaves behind when it is deleted or expires: its reference to
    the file it serves (the file goes with the last reference), or its own directory."""
    from domain.exports import EXPIRED, READY, export_dir, file_key

    if export.status in (READY, EXPIRED) and export.file_name:
        key = file_key(export)
        if await shared.release(key, export.id):
            await asyncio.to_thread(storage.delete, key.rsplit("/", 1)[0])
    else:
        await asyncio.to_thread(storage.delete, export_dir(export.id))
