"""Waking `GET /api/v1/exports/{id}?wait=N` when the export's status changes, without polling
Redis: every status change (and deletion) publishes on the export's own channel, in the same
compare-and-set script that makes it. Each web process holds one subscription connection and
subscribes to the channel of an export only while requests wait on it: a web process nobody
waits on receives nothing, however many exports the workers finish (on one channel for all,
each web process spent CPU on every export's every change). A message can be missed (the
connection is being re-established after Redis went away), so waiters also look again every
RECHECK seconds on their own."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from typing import AsyncIterator

import redis.exceptions
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from domain import keys

RECHECK = 1.0  # seconds a waiter trusts the subscription before looking for itself
RETRY = 1.0  # seconds between attempts to subscribe again
REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)
log = logging.getLogger(__name__)


class StatusWaiters:
    def __init__(self, redis: Redis):
        self.redis = redis
        self.waiting: dict[str, set[asyncio.Event]] = defaultdict(set)
        self.confirmed: dict[str, asyncio.Event] = {}  # by channel: Redis has taken the SUBSCRIBE
        self.pubsub: PubSub | None = None  # while connected

    @contextlib.asynccontextmanager
    async def watch(self, export_id: str) -> AsyncIterator[asyncio.Event]:
        """An event set whenever `export_id`'s status may have changed, while the block runs.
        The block begins once Redis has the subscription (or after RECHECK without it), so a
        change made after the caller's next read of the export is not missed."""
        event = asyncio.Event()
        channel = keys.status_changes(export_id)
        first = export_id not in self.waiting
        self.waiting[export_id].add(event)
        try:
            if first:
                self.confirmed[channel] = asyncio.Event()
                await self._send("subscribe", channel)
            with contextlib.suppress(TimeoutError, KeyError):
                async with asyncio.timeout(RECHECK):
                    await self.confirmed[channel].wait()
            yield event
        finally:
            events = self.waiting[export_id]
            events.discard(event)
            if not events:
                del self.waiting[export_id]
                self.confirmed.pop(channel, None)
                await self._send("unsubscribe", channel)

    async def _send(self, command: str, channel: str) -> None:
        """SUBSCRIBE or UNSUBSCRIBE on the live connection; without one, the next connection
        subscribes to whatever is then waited on."""
        if self.pubsub is not None:
            with contextlib.suppress(*REDIS_DOWN):
                await getattr(self.pubsub, command)(channel)

    def _wake(self, export_id: str) -> None:
        for event in self.waiting.get(export_id, ()):
            event.set()

    async def listen(self) -> None:
        """Read the subscription until cancelled, connecting again whenever it drops."""
        while True:
            try:
                async with self.redis.pubsub() as pubsub:
                    await pubsub.connect()
                    self.pubsub = pubsub  # waiters from now on subscribe for themselves
                    # always subscribed to one channel: redis-py then checks the connection's
                    # health with PING messages, not by reading a reply beside this reader
                    await pubsub.subscribe(keys.STATUS_ANCHOR, *(keys.status_changes(i) for i in self.waiting))
                    async for message in pubsub.listen():
                        if message["type"] == "message":
                            self._wake(message["data"])
                        elif message["type"] == "subscribe" and message["channel"] in self.confirmed:
                            self.confirmed[message["channel"]].set()
            except REDIS_DOWN as exc:
                log.warning("status subscription lost (%s); waiters poll every %.0f s until it is back", exc, RECHECK)
                for export_id in list(self.waiting):
                    self._wake(export_id)
                await asyncio.sleep(RETRY)
            finally:
                self.pubsub = None


@contextlib.asynccontextmanager
async def listening(waiters: StatusWaiters) -> AsyncIterator[None]:
    task = asyncio.create_task(waiters.listen())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
