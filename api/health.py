"""GET /health: is Redis reachable, and have workers been seen recently."""
from __future__ import annotations

import time

import orjson
from aiohttp import web

from api.keys import SETTINGS, STATE
from domain import keys

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
        body["queue_depth"] = await state.zcount(request.app[SETTINGS].queue_name, "-inf", time.time() * 1000)
    except Exception:  # health must answer, whatever is broken
        pass
    healthy = body["redis"] == "ok" and bool(body["workers"])
    body["status"] = "ok" if healthy else "degraded"
    return web.Response(status=200 if healthy else 503, body=orjson.dumps(body), content_type="application/json")
