"""The job queue as both sides see it: arq's Redis client, plain-JSON job serialisation
(never pickle), the names of the jobs, what waits in the queue, and how a dead attempt's job
leaves it."""
from __future__ import annotations

import contextlib
import time
from typing import Any

import orjson
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix, result_key_prefix, retry_key_prefix
from redis.asyncio import Redis
from redis.exceptions import WatchError

from domain import keys, redis_clients
from domain.settings import Settings

RUN_EXPORT = "run_export"
SWEEP = "sweep"
RECOVER = "recover"


def serialize(data: dict[str, Any]) -> bytes:
    # A failed job's result is its exception: keep its repr, as text.
    return orjson.dumps(data, default=repr)


def deserialize(raw: bytes) -> dict[str, Any]:
    return orjson.loads(raw)


def connect(where: Settings | str) -> Redis:
    """The client for exportd's own state (decoded strings): from the settings (a URL, or the
    sentinels' primary) or a bare URL; see domain/redis_clients.py."""
    return redis_clients.connect(where)


def arq_client(where: Settings | str, queue_name: str = "exportd:queue") -> ArqRedis:
    """arq's client (bytes) on the same Redis, connecting lazily (arq's create_pool insists on
    Redis at start-up; the API must start, and answer 503, while Redis is away). The worker is
    given one too, so that it reaches Redis as everything else does."""
    client = redis_clients.connect(where, decode=False, redis_class=ArqRedis, health_check_interval=0)
    client.job_serializer = serialize
    client.job_deserializer = deserialize
    client.default_queue_name = queue_name
    return client


async def arq_pool(where: Settings | str, queue_name: str = "exportd:queue") -> ArqRedis:
    return arq_client(where, queue_name)


ENQUEUE_TRIES = 3


async def enqueue_export(pool: ArqRedis, queue_name: str, export_id: str, dataset_id: str, attempt: int = 1) -> None:
    """Queue attempt `attempt` of an export of `dataset_id` (the job names it, so that the
    worker reads the dataset beside taking the export); queuing the same attempt twice runs it
    once. arq answers None both when the job is there and when the connection dropped under
    its transaction (a failover): then the job is looked for, and queued again if missing."""
    job_id = keys.export_job_id(export_id, attempt)
    for _ in range(ENQUEUE_TRIES):
        with contextlib.suppress(WatchError):
            if await pool.enqueue_job(RUN_EXPORT, export_id, attempt, dataset_id, _job_id=job_id,
                                      _queue_name=queue_name) is not None:
                return
        if await pool.exists(job_key_prefix + job_id, result_key_prefix + job_id):
            return


def dead_job(queue_name: str, job_id: str) -> list[list[Any]]:
    """The Redis commands that take a job out of arq's queue with its keys (its description,
    in-progress marker and try counter), for a compare-and-set's `also`: run with the change
    that gives a dead attempt's export to another, so that its job does not sit in the queue
    (arq keeps a running job there until its worker ends it, and a killed worker never does)
    for the job timeout, counted as queued and read by every worker's poll."""
    return [["ZREM", queue_name, job_id],
            ["DEL", job_key_prefix + job_id, in_progress_key_prefix + job_id, retry_key_prefix + job_id]]


# KEYS[1]: the queue. ARGV: a time (ms), how many ids to look at, the job key prefixes (job,
# in-progress, retry), exportd's key prefix. Of the jobs due since before that time, removes
# (with their keys) those that can do nothing: a cron job still there (arq removes one as it
# ends, so its worker died), an export's attempt n whose export is gone or neither queued for
# attempt n (at attempt n - 1) nor processing at attempt n. Returns how many it removed.
_STALE = """
local removed = 0
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))) do
  local stale = string.sub(id, 1, 5) == 'cron:'
  local export, attempt = string.match(id, '^export:(.+):(%d+)$')
  if export then
    local state = redis.call('HMGET', ARGV[6] .. 'export:' .. export, 'status', 'attempt')
    local n, at = tonumber(attempt), tonumber(state[2] or '')
    stale = not ((state[1] == 'queued' and at == n - 1) or (state[1] == 'processing' and at == n))
  end
  if stale then
    redis.call('ZREM', KEYS[1], id)
    redis.call('DEL', ARGV[3] .. id, ARGV[4] .. id, ARGV[5] .. id)
    removed = removed + 1
  end
end
return removed
"""
STALE_LOOKS = 1000  # the oldest queued ids the sweep looks at each minute


async def drop_stale_jobs(redis: Redis, queue_name: str, older_than_seconds: float) -> int:
    """Remove the jobs queued that long ago that can do nothing (see _STALE): what a worker
    killed while nothing recovered its export left (the export deleted meanwhile, or it was
    running a cron job). Removing one a worker still runs is harmless: arq's own ending of it
    removes the same keys."""
    return await redis.register_script(_STALE)(keys=[queue_name], args=[
        int((time.time() - older_than_seconds) * 1000), STALE_LOOKS, job_key_prefix, in_progress_key_prefix,
        retry_key_prefix, keys.PREFIX])


# KEYS[1]: the queue. ARGV: now (ms), how many of the due ids to look at, the in-progress and
# the job key prefixes. Returns the due jobs that wait for a worker (neither running, nor
# stale: their description gone) and the oldest one's score (enqueue time, ms), or false.
# Running jobs come first (they are the oldest), so only the first ids are looked at: those
# further on count as waiting.
_WAITING = """
local due = redis.call('ZCOUNT', KEYS[1], '-inf', ARGV[1])
local head = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
local idle, oldest = 0, false
for i = 1, #head, 2 do
  if redis.call('EXISTS', ARGV[3] .. head[i]) == 1 or redis.call('EXISTS', ARGV[4] .. head[i]) == 0 then
    idle = idle + 1
  elseif not oldest then
    oldest = head[i + 1]
  end
end
if not oldest and due > #head / 2 then
  local next = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', #head / 2, 1)
  oldest = next[2] or false
end
return {due - idle, oldest}
"""
WAITING_LOOKS = 1000  # due ids /health and /metrics look at: more than all the jobs running at once


async def waiting(redis: Redis, queue_name: str) -> tuple[int, float | None]:
    """How many due jobs wait for a worker, and since when (a Unix time) the oldest has."""
    depth, oldest = await redis.register_script(_WAITING)(
        keys=[queue_name], args=[int(time.time() * 1000), WAITING_LOOKS, in_progress_key_prefix, job_key_prefix])
    return int(depth), float(oldest) / 1000 if oldest else None
