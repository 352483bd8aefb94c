"""A write acknowledged only once replicas hold it: with EXPORTD_REDIS_REPLICAS, a request that
changes something (POST, PUT, PATCH, DELETE) and succeeded waits (WAIT, domain/redis_clients.py)
until that many replicas hold every write made so far, its own among them, before its answer
goes out. A primary SIGKILLed after the answer then loses nothing it acknowledged.

When the replicas do not confirm in EXPORTD_REDIS_WAIT_MS, or the primary changed while the
request ran (a failover: some of its writes may have gone to the old primary), the answer is
503 `not_replicated`. The change is not undone: it is on the primary, and stays unless that
primary fails before a replica catches up; the body names the resource (`location`) so that a
client looks there before trying again (a POST tried again makes a second export)."""
from __future__ import annotations

from aiohttp import web

from api.keys import QUEUE, SETTINGS, STATE
from domain.errors import Unavailable
from domain.redis_clients import confirmed, switches

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
RETRY_AFTER = "5"


class NotReplicated(Unavailable):
    error_code = "not_replicated"

    def __init__(self, message: str, location: str | None) -> None:
        extra = {"location": location} if location else {}
        super().__init__(message, **extra)
        self.headers = {"Retry-After": RETRY_AFTER}


@web.middleware
async def durable_middleware(request: web.Request, handler) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    if request.method not in WRITES or settings.redis_replicas <= 0:
        return await handler(request)
    clients = (request.app[STATE], request.app[QUEUE])
    before = switches(*clients)
    try:
        response = await handler(request)
    except Exception:
        if switches(*clients) != before:  # a 404 or 409 may be the request's own writes, lost
            raise _switched(None) from None
        raise
    if response.status >= 400 or response.prepared:
        return response
    location = response.headers.get("Location")
    if not await confirmed(request.app[STATE], settings.redis_replicas, settings.redis_wait_ms):
        raise NotReplicated(
            f"the change was made on the Redis primary, but fewer than {settings.redis_replicas} replica(s) "
            f"confirmed it within {settings.redis_wait_ms} ms: it stays unless the primary fails before they catch "
            "up. It was not undone: look for it (location) before trying again", location)
    if switches(*clients) != before:
        raise _switched(location)
    return response


def _switched(location: str | None) -> NotReplicated:
    return NotReplicated("the Redis primary changed (a failover) while the request ran: part of the change may be "
                         "lost. Look for it (location, or the collection) before trying again", location)
