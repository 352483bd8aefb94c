"""Waking `GET /api/v1/exports/{id}?wait=N` when the export's status changes, without polling
Redis: every status change (and deletion) publishes the export's id on one channel, in the
same compare-and-set script that makes it; each web process holds one subscription and sets
the events of the requests waiting on that id. A message can be missed (the subscription is
being re-established after Redis went away), so waiters also look again every RECHECK seconds
on their own."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from typing import AsyncIterator

import redis.exceptions
from redis.asyncio import Redis

from domain import keys

RECHECK = 1.0  # seconds a waiter trusts the subscription before looking for itself
RETRY = 1.0  # seconds between attempts to subscribe again
log = logging.getLogger(__name__)


class StatusWaiters:
    def __init__(self, redis: Redis):
        self.redis = redis
        self.waiting: dict[str, set[asyncio.Event]] = defaultdict(set)

    @contextlib.contextmanager
    def watch(self, export_id: str):
        """An event set whenever `export_id`'s status may have changed, while the block runs."""
        event = asyncio.Event()
        self.waiting[export_id].add(event)
        try:
            yield event
        finally:
            events = self.waiting[export_id]
            events.discard(event)
            if not events:
                del self.waiting[export_id]

    def _wake(self, export_id: str) -> None:
        for event in self.waiting.get(export_id, ()):
            event.set()

    async def listen(self) -> None:
        """Follow the channel until cancelled, subscribing again whenever the connection drops."""
        while True:
            try:
                async with self.redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(keys.STATUS_CHANGES)
                    async for message in pubsub.listen():
                        if message["type"] == "message":
                            self._wake(message["data"])
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
                log.warning("status subscription lost (%s); waiters poll every %.0f s until it is back", exc, RECHECK)
                for export_id in list(self.waiting):
                    self._wake(export_id)
                await asyncio.sleep(RETRY)


@contextlib.asynccontextmanager
async def listening(waiters: StatusWaiters) -> AsyncIterator[None]:
    task = asyncio.create_task(waiters.listen())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
