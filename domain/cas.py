"""Compare-and-set on a Redis hash, in one Lua script: change fields only when others hold
expected values, and keep sorted-set indexes in step, atomically. The export and job state
machines are built on it, so a late or duplicated worker can never overwrite a newer state."""
from __future__ import annotations

from typing import Any, Iterable

import orjson
from redis.asyncio import Redis

# KEYS[1]: the hash. ARGV[1]: JSON {"when": {field: [allowed values]}, "set": {field: value},
# "zadd": [[key, score, member], …], "zrem": [[key, member], …], "lapsed": [key, member, before],
# "may_create": bool, "publish": [channel, message], "also": [[command, arg, …], …]}. A missing
# field reads as "". "also" holds further commands run with the change (all their arguments
# text), so that what goes with a state (counters, a shared file's entry) is there exactly when
# the state is. "count": [hash, outcome, field] adds 1 to the hash's counter
# `outcome|<the field's value>` with the change (an export's outcome by its format). "lapsed"
# also asks that member's score in key be below `before`. Returns 1 when applied (with "returning": the hash as it now is, as
# HGETALL gives it), "enqueue": {if, key, result, payload, px, queue, score, id} queues an
# arq job with the change, when the hash's field `if` is not empty and no job of that id is
# queued or done (what arq's enqueue_job checks); 0 when a condition failed, -1 when the hash does not exist (unless
# may_create).
SCRIPT = """
local args = cjson.decode(ARGV[1])
if not args['may_create'] and redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
for name, allowed in pairs(args['when']) do
  local current = redis.call('HGET', KEYS[1], name) or ''
  local ok = false
  for _, value in ipairs(allowed) do
    if value == current then ok = true end
  end
  if not ok then return 0 end
end
if args['lapsed'] then
  local lease = redis.call('ZSCORE', args['lapsed'][1], args['lapsed'][2])
  if lease and tonumber(lease) >= args['lapsed'][3] then return 0 end
end
local flat = {}
for name, value in pairs(args['set']) do
  table.insert(flat, name)
  table.insert(flat, value)
end
if #flat > 0 then redis.call('HSET', KEYS[1], unpack(flat)) end
for _, change in ipairs(args['zadd'] or {}) do redis.call('ZADD', change[1], change[2], change[3]) end
for _, change in ipairs(args['zrem'] or {}) do redis.call('ZREM', change[1], change[2]) end
for _, command in ipairs(args['also'] or {}) do redis.call(unpack(command)) end
if args['count'] then
  local c = args['count']
  redis.call('HINCRBY', c[1], c[2] .. '|' .. (redis.call('HGET', KEYS[1], c[3]) or ''), 1)
end
local job = args['enqueue']
if job and (redis.call('HGET', KEYS[1], job['if']) or '') ~= '' and redis.call('EXISTS', job['key'], job['result']) == 0 then
  redis.call('SET', job['key'], job['payload'], 'PX', job['px'])
  redis.call('ZADD', job['queue'], job['score'], job['id'])
end
if args['publish'] then redis.call('PUBLISH', args['publish'][1], args['publish'][2]) end
if args['returning'] then return redis.call('HGETALL', KEYS[1]) end
return 1
"""

APPLIED, REFUSED, MISSING = 1, 0, -1


class CompareAndSet:
    def __init__(self, redis: Redis):
        self._script = redis.register_script(SCRIPT)

    async def __call__(self, key: str, when: dict[str, list[str]], values: dict[str, str], *,
                       zadd: Iterable[list[Any]] = (), zrem: Iterable[list[Any]] = (),
                       lapsed: list[Any] | None = None, may_create: bool = False,
                       publish: list[str] | None = None, also: Iterable[list[Any]] = (),
                       count: list[str] | None = None, returning: bool = False,
                       enqueue: dict[str, Any] | None = None) -> int | list[Any]:
        payload: dict[str, Any] = {"when": when, "set": values, "zadd": list(zadd), "zrem": list(zrem),
                                   "may_create": may_create}
        if also:
            payload["also"] = [[str(arg) for arg in command] for command in also]
        if count:
            payload["count"] = count
        if lapsed:
            payload["lapsed"] = lapsed
        if publish:
            payload["publish"] = publish
        if returning:
            payload["returning"] = True
        if enqueue:
            payload["enqueue"] = enqueue
        return await self._script(keys=[key], args=[orjson.dumps(payload)])
