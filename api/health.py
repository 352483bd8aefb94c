"""GET /health: does Redis answer and take writes, have workers been seen recently, how many
jobs wait and since when, is there room on the data directory's disk; GET /metrics: the same
and more, for Prometheus.

/health answers 200 with status "ok", or 503 with status "degraded" and `reasons` (one
sentence each) so that a load balancer takes the process out while a person reads why."""
from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import orjson
import redis.exceptions
from aiohttp import web

from api.keys import SETTINGS, STATE
from domain import keys, queue
from domain.metrics import render

WORKER_SILENCE = 20  # seconds after its last heartbeat a worker counts as gone
PROBE_SECONDS = 10  # the write probe's key expires on its own
REDIS_SECONDS = 3  # health answers within this, however long the clients retry (EXPORTD_REDIS_RETRY_SECONDS)


async def health(request: web.Request) -> web.Response:
    state = request.app[STATE]
    settings = request.app[SETTINGS]
    body: dict = {"redis": "unavailable", "workers": [], "queue_depth": None}
    reasons: list[str] = []
    try:
        async with asyncio.timeout(REDIS_SECONDS):
            await _redis_health(state, settings, body, reasons)
    except Exception:  # health must answer, whatever is broken
        pass
    if body["redis"] == "unavailable":
        reasons.append("Redis does not answer")
    elif not body["workers"]:
        reasons.append(f"no worker has been seen for {WORKER_SILENCE} s")
    body["disk"] = disk = await asyncio.to_thread(_disk, settings.data_dir, settings.min_free_bytes)
    if disk.get("free_bytes") is not None and disk["free_bytes"] < settings.min_free_bytes:
        reasons.append(f"the data directory has {disk['free_bytes']:,} bytes free, below the "
                       f"{settings.min_free_bytes:,} it must keep (EXPORTD_MIN_FREE_BYTES)")
    elif disk.get("error"):
        reasons.append(f"the data directory cannot be looked at: {disk['error']}")
    body["status"] = "degraded" if reasons else "ok"
    if reasons:
        body["reasons"] = reasons
    return web.Response(status=503 if reasons else 200, body=orjson.dumps(body), content_type="application/json")


async def _redis_health(state, settings, body: dict, reasons: list[str]) -> None:
    await state.ping()
    body["redis"] = "ok"
    try:  # a full (maxmemory, noeviction) or read-only Redis still answers PING
        await state.set(keys.HEALTH_PROBE, "1", ex=PROBE_SECONDS)
    except (redis.exceptions.OutOfMemoryError, redis.exceptions.ReadOnlyError) as exc:
        body["redis"] = "refusing_writes"
        reasons.append(f"Redis refuses writes ({exc}): no export can be created or change state")
    seen = await state.zrangebyscore(keys.WORKERS, time.time() - WORKER_SILENCE, "+inf", withscores=True)
    body["workers"] = [{"name": name, "last_seen_seconds_ago": round(time.time() - beat, 1)} for name, beat in seen]
    # jobs due now that no worker runs yet (scheduled cron or deferred jobs share the set)
    depth, oldest = await queue.waiting(state, settings.queue_name)
    body["queue_depth"] = depth
    body["oldest_queued_seconds"] = round(max(0.0, time.time() - oldest), 1) if oldest else 0
    if settings.redis_replicas:  # fewer replicas than asked for: every write answers 503 not_replicated
        replicas = int((await state.info("replication")).get("connected_slaves", 0))
        body["redis_replicas"] = replicas
        if replicas < settings.redis_replicas:
            reasons.append(f"Redis has {replicas} replica(s) connected, fewer than the {settings.redis_replicas} "
                           "every acknowledged write must reach (EXPORTD_REDIS_REPLICAS)")


def _disk(data_dir: Path, floor: int) -> dict:
    try:
        usage = shutil.disk_usage(data_dir)
    except OSError as exc:
        return {"free_bytes": None, "min_free_bytes": floor, "error": exc.strerror or str(exc)}
    return {"free_bytes": usage.free, "total_bytes": usage.total, "min_free_bytes": floor}


async def metrics(request: web.Request) -> web.Response:
    """GET /metrics: Prometheus text format."""
    text = await render(request.app[STATE], request.app[SETTINGS].queue_name)
    return web.Response(text=text, content_type="text/plain", charset="utf-8", headers={"X-Content-Type-Version": "0.0.4"})
