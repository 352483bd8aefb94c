"""A per-user limit on export creation: a fixed one-minute window counted in Redis, shared by
every web process."""
from __future__ import annotations

import time

from redis.asyncio import Redis

from domain import keys
from domain.errors import TooManyRequests

WINDOW = 60  # seconds


async def check(redis: Redis, user: str, limit: int) -> None:
    """Count one creation for `user`; past `limit` in this minute, 429 with Retry-After."""
    if limit <= 0:
        return
    now = time.time()
    window = int(now // WINDOW)
    key = keys.rate(user, window)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.incr(key)
        pipe.expire(key, WINDOW * 2)
        count, _ = await pipe.execute()
    if count > limit:
        retry_after = max(1, int((window + 1) * WINDOW - now) + 1)
        raise TooManyRequests(f"at most {limit} exports a minute may be created; try again in {retry_after} s", retry_after)
