"""Request budgets counted in Redis over fixed one-minute windows, shared by every web process:
export creations per user, and the Explore API's requests and streamed exports per client
(api/throttle.py)."""
from __future__ import annotations

import time

from redis.asyncio import Redis

from domain import keys
from domain.errors import TooManyRequests

WINDOW = 60  # seconds


async def check(redis: Redis, user: str, limit: int, what: str = "exports may be created") -> None:
    """Count one for `user` (a user's name, or a client's "kind:address"); past `limit` in this
    minute, 429 with Retry-After. `what` finishes the message: "at most N {what} a minute"."""
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
        raise TooManyRequests(f"at most {limit} {what} a minute; try again in {retry_after} s", retry_after)
