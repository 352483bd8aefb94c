"""create_app(settings): the one aiohttp application used by `python -m api`, the Procfile and
the tests. One cleanup context per resource: its teardown runs only if its setup did."""
from __future__ import annotations

import asyncio
import contextlib
from typing import AsyncIterator

from aiohttp import web

from api.errors import error_middleware
from api.throttle import throttle_middleware
from api.isolation.pool import QueryPool
from api.keys import DATASETS, EXPORTS, POOL, QUEUE, SETTINGS, STATE, STORAGE, USERS, WAITERS
from api.routes import add_routes
from api.waiting import StatusWaiters, listening
from domain import queue
from domain.datasets import DatasetRepo
from domain.exports import ExportRepo
from domain.settings import Settings
from domain.storage import cache_grace, open_storage
from domain.users import UserRepo

MAX_BODY = 1 << 20  # JSON bodies; uploads (management API) stream past this limit on their own
# A request line may carry an ODSQL query up to the term limit (aiohttp's default is 8 KiB)
MAX_REQUEST_LINE = 32 * 1024
EVICT_EVERY = 600  # seconds between looks for cached copies of bucket files unread for long


async def _storage(app: web.Application) -> AsyncIterator[None]:
    """The configured storage; with a bucket, this host's cached copies are evicted now and then."""
    settings = app[SETTINGS]
    app[STORAGE] = storage = await asyncio.to_thread(open_storage, settings)
    evicting = asyncio.create_task(_evict(storage, cache_grace(settings)))
    yield
    evicting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await evicting
    storage.close()


async def _evict(storage, older_than: int) -> None:
    while True:
        await asyncio.sleep(EVICT_EVERY)
        await asyncio.to_thread(storage.evict_cache, older_than)


async def _state(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    state = queue.connect(settings.redis_url)
    app[STATE] = state
    app[EXPORTS] = ExportRepo(state, queue_name=settings.queue_name)
    app[DATASETS] = DatasetRepo(state)
    app[USERS] = UserRepo(state, settings.admin_token)
    app[WAITERS] = waiters = StatusWaiters(state)
    async with listening(waiters):
        yield
    await state.aclose()


async def _queue(app: web.Application) -> AsyncIterator[None]:
    pool = await queue.arq_pool(app[SETTINGS].redis_url, app[SETTINGS].queue_name)
    app[QUEUE] = pool
    yield
    await pool.aclose()


async def _pool(app: web.Application) -> AsyncIterator[None]:
    app[POOL] = pool = QueryPool(app[SETTINGS])
    await pool.start()
    yield
    await pool.close()


def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[error_middleware, throttle_middleware], client_max_size=MAX_BODY,
                          handler_args={"max_line_size": MAX_REQUEST_LINE})
    app[SETTINGS] = settings
    app.cleanup_ctx.append(_storage)
    app.cleanup_ctx.append(_state)
    app.cleanup_ctx.append(_queue)
    app.cleanup_ctx.append(_pool)
    add_routes(app)
    return app
