"""The job queue as both sides see it: arq's Redis settings, plain-JSON job serialisation
(never pickle), and the names of the jobs."""
from __future__ import annotations

from typing import Any

import orjson
from arq.connections import ArqRedis, RedisSettings
from redis.asyncio import ConnectionPool, Redis

from domain import keys

RUN_EXPORT = "run_export"
SWEEP = "sweep"
RECOVER = "recover"


def serialize(data: dict[str, Any]) -> bytes:
    # A failed job's result is its exception: keep its repr, as text.
    return orjson.dumps(data, default=repr)


def deserialize(raw: bytes) -> dict[str, Any]:
    return orjson.loads(raw)


def redis_settings(url: str) -> RedisSettings:
    return RedisSettings.from_dsn(url)


def connect(url: str) -> Redis:
    """The client for exportd's own state (decoded strings); arq keeps its own pool."""
    return Redis.from_url(url, decode_responses=True, socket_connect_timeout=5, health_check_interval=30)


async def arq_pool(url: str, queue_name: str = "exportd:queue") -> ArqRedis:
    """arq's client, connecting lazily (arq's create_pool insists on Redis at start-up; the
    API must start, and answer 503, while Redis is away)."""
    client = ArqRedis.from_pool(ConnectionPool.from_url(url, socket_connect_timeout=5))  # owns its pool
    client.job_serializer = serialize
    client.job_deserializer = deserialize
    client.default_queue_name = queue_name
    return client


async def enqueue_export(pool: ArqRedis, queue_name: str, export_id: str, dataset_id: str, attempt: int = 1) -> None:
    """Queue attempt `attempt` of an export of `dataset_id` (the job names it, so that the
    worker reads the dataset beside taking the export); queuing the same attempt twice runs it
    once."""
    await pool.enqueue_job(RUN_EXPORT, export_id, attempt, dataset_id, _job_id=keys.export_job_id(export_id, attempt),
                           _queue_name=queue_name)
