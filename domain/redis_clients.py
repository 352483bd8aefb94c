"""Every Redis client exportd makes, from one place: a plain URL (`redis://`, or `rediss://user:
password@host` with TLS for a managed Redis), or the primary that Redis Sentinels name.

Each client retries a command that met a lost connection, a timeout or a read-only server
(a primary demoted during a failover) for EXPORTD_REDIS_RETRY_SECONDS, reconnecting each time
(through the sentinels, to whichever primary they name by then), so that web processes and
workers ride out a failover without restarting. With EXPORTD_REDIS_REPLICAS, `confirmed`
waits (WAIT) until that many replicas hold every write made so far."""
from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable, TypeVar

from redis.asyncio import Redis
from redis.asyncio.connection import SSLConnection, parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, ReadOnlyError, TimeoutError

from domain import keys
from domain.settings import Settings

T = TypeVar("T")
# a command that met these was not applied, or may be retried; OSError and asyncio's timeout:
# a connection refused or timed out while being made (redis-py converts them only after)
RETRIED = (ConnectionError, TimeoutError, ReadOnlyError, OSError, asyncio.TimeoutError)
CONNECT_TIMEOUT = 5  # seconds
SENTINEL_TIMEOUT = 1  # seconds a sentinel has to answer where the primary is
DEFAULT_RETRY_SECONDS = 5  # a bare URL (tools, tests) is retried this long


class RetryFor(Retry):
    """redis-py's Retry bounded by time rather than by count, with a backoff from 50 ms to 1 s:
    a failover takes the sentinels' down-after-milliseconds plus an election, whatever the
    number of attempts. A call made inside another (a sentinel connection's connect inside a
    command) runs once: the outer one retries it, and the time bound holds for both."""

    def __init__(self, seconds: float):
        super().__init__(ExponentialBackoff(cap=1.0, base=0.05), -1, RETRIED)
        self.seconds = seconds
        self.active = False

    async def call_with_retry(self, do: Callable[[], Awaitable[T]], fail: Callable[[Any], Any]) -> T:
        if self.active:
            return await do()
        self.active = True
        try:
            deadline, failures = None, 0
            while True:
                try:
                    return await do()
                except self._supported_errors as error:
                    failures += 1
                    await fail(error)
                    moment = time.monotonic()
                    deadline = deadline or moment + self.seconds
                    if moment >= deadline:
                        raise error
                    await asyncio.sleep(min(self._backoff.compute(failures), deadline - moment))
        finally:
            self.active = False


class SwitchCountingPool(SentinelConnectionPool):
    """A sentinel-managed pool that counts the times the primary it was given changed: a write
    request that saw a switch cannot know which of its writes the new primary holds."""

    switches = 0

    async def get_master_address(self):
        before = self.master_address
        address = await super().get_master_address()
        if before is not None and address != before:
            self.switches += 1
        return address


def switches(*clients: Redis) -> int:
    """How many times these clients' primary changed (always 0 without sentinels)."""
    return sum(getattr(client.connection_pool, "switches", 0) for client in clients)


def connect(where: Settings | str, *, decode: bool = True, redis_class: type[Redis] = Redis,
            health_check_interval: int = 30) -> Redis:
    """A client of exportd's Redis (decoded strings unless `decode` is False), connecting
    lazily: the API starts, and answers 503, while Redis is away."""
    settings = where if isinstance(where, Settings) else None
    url = settings.redis_url if settings else str(where)
    retry_seconds = settings.redis_retry_seconds if settings else DEFAULT_RETRY_SECONDS
    options: dict[str, Any] = dict(decode_responses=decode, socket_connect_timeout=CONNECT_TIMEOUT,
                                   health_check_interval=health_check_interval, retry=RetryFor(retry_seconds),
                                   retry_on_error=list(RETRIED))
    if settings is None or not settings.redis_sentinels:
        return redis_class.from_url(url, **options)
    parsed = parse_url(url)  # credentials, database and TLS options; its host is the sentinels' business
    parsed.pop("host", None)
    parsed.pop("port", None)
    tls = parsed.pop("connection_class", None) is SSLConnection
    tls_options = {k: v for k, v in parsed.items() if k.startswith("ssl_")}
    # no retries of their own: a sentinel that does not answer is passed over for the next one,
    # and the command that asked retries the whole round
    sentinel_options = dict(socket_connect_timeout=SENTINEL_TIMEOUT, socket_timeout=SENTINEL_TIMEOUT,
                            username=settings.redis_sentinel_username, password=settings.redis_sentinel_password)
    if tls:  # sentinels of a TLS deployment listen with TLS too, with the same certificates
        sentinel_options.update(ssl=True, **tls_options)
    sentinel = Sentinel(list(settings.redis_sentinels), sentinel_kwargs=sentinel_options, **{**parsed, **options})
    return sentinel.master_for(settings.redis_master, redis_class=redis_class, connection_pool_class=SwitchCountingPool,
                               ssl=tls)


async def confirmed(redis: Redis, replicas: int, wait_ms: int) -> bool:
    """Whether `replicas` replicas hold every write the primary took so far (this process's
    and everyone's before it): a mark is written on one connection, then WAIT on the same one,
    as WAIT waits for that connection's last write. True at once when no replica is asked for."""
    if replicas <= 0:
        return True
    async with redis.pipeline(transaction=False) as pipe:
        pipe.incr(keys.REPLICATION_MARK)
        pipe.execute_command("WAIT", replicas, wait_ms)
        _, acknowledged = await pipe.execute()
    return int(acknowledged) >= replicas
