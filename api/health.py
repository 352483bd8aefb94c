"""GET /health: is Redis reachable, have workers been seen recently, how deep is the queue;
GET /metrics: the same and more, for Prometheus."""
from __future__ import annotations

import time

import orjson
from aiohttp import web

from api.keys import SETTINGS, STATE
from domain import keys
from domain.metrics import render

WORKER_SILENCE = 20  # seconds after its last heartbeat a worker counts as gone


async def health(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body: dict = {"redis": "unavailable", "workers": [], "queue_depth": None}
    try:
        await state.ping()
        body["redis"] = "ok"
        seen = await state.zrangebyscore(keys.WORKERS, time.time() - WORKER_SILENCE, "+inf", withscores=True)
        body["workers"] = [{"name": name, "last_seen_seconds_ago": round(time.time() - beat, 1)} for name, beat in seen]
        # jobs due now, waiting or running; arq keeps scheduled (cron, deferred) jobs in the same set
        queue_name = request.app[SETTINGS].queue_name
        body["queue_depth"] = await state.zcount(queue_name, "-inf", time.time() * 1000)
        oldest = await state.zrangebyscore(queue_name, "-inf", time.time() * 1000, start=0, num=1, withscores=True)
        body["oldest_queued_seconds"] = round(time.time() - oldest[0][1] / 1000, 1) if oldest else 0
    except Exception:  # health must answer, whatever is broken
        pass
    healthy = body["redis"] == "ok" and bool(body["workers"])
    body["status"] = "ok" if healthy else "degraded"
    return web.Response(status=200 if healthy else 503, body=orjson.dumps(body), content_type="application/json")


async def metrics(request: web.Request) -> web.Response:
    """GET /metrics: Prometheus text format."""
    text = await render(request.app[STATE], request.app[SETTINGS].queue_name)
    return web.Response(text=text, content_type="text/plain", charset="utf-8", headers={"X-Content-Type-Version": "0.0.4"})
