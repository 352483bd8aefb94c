"""The web process's query processes: where the Explore API's queries, the check of a new
export and streamed exports run, so that native code (pyarrow, GDAL) that crashes or runs
away costs the request it serves, never the web process.

Each call takes a process of the pool, which then does nothing else until the call ends. A
call has budgets: its process's memory may grow by `query_memory_mb` over what it held idle,
and a call other than a streamed export may run `query_seconds`; past either the process is
killed and the request answers with an error that names the budget (a 400 for memory, which
the same query would exceed again; a 503 for time, which a quieter moment may not). Heavy
calls (group_by, aggregates, facets, sorts) run at most `heavy_queries` at a time per web
process, and heavy calls and streamed exports together leave one process for light ones. A
call that waits longer than `query_wait` for its turn answers 503 with Retry-After.

Processes are forked from multiprocessing's fork server, which imports the query code once:
a new one starts in milliseconds, so one that died or grew is simply replaced."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import socket
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

import orjson

from api.isolation import child as child_module
from api.isolation import frames
from api.isolation.errors import QueryFailed, Relayed, too_large, too_slow
from domain.errors import DomainError, Unavailable
from domain.settings import Settings

log = logging.getLogger("exportd.api")

LIGHT, HEAVY, STREAM = "light", "heavy", "stream"
WATCH_EVERY = 0.02  # seconds between looks at a running call's memory and time
PAGE = os.sysconf("SC_PAGE_SIZE")
_CONTEXT = multiprocessing.get_context("forkserver")


@dataclass(eq=False)
class Child:
    process: Any  # multiprocessing's Process
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_rss: int = 0
    over: str | None = None  # the budget it was killed for: "memory" or "time"
    calls: int = field(default=0)
    settled: bool = True  # its last call's final frame was read: it waits for the next

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss(self) -> int:
        """Resident bytes now; 0 once gone."""
        try:
            with open(f"/proc/{self.pid}/statm", "rb") as f:
                return int(f.read().split()[1]) * PAGE
        except (OSError, ValueError, IndexError):
            return 0

    def kill(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.process.kill()
        self.writer.close()


class QueryPool:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.memory = settings.query_memory_mb << 20
        self._idle: list[Child] = []
        self._busy: set[Child] = set()
        self._slots = asyncio.Semaphore(settings.query_processes)
        self._heavy = asyncio.Semaphore(settings.heavy_queries)
        self._long = asyncio.Semaphore(max(1, settings.query_processes - 1))
        self._closed = False

    async def start(self) -> None:
        """Starts the fork server (it imports pyarrow and the query code: a second or so), so
        that the first query need not wait for it."""
        _CONTEXT.set_forkserver_preload(["api.isolation.child"])
        await asyncio.to_thread(multiprocessing.forkserver.ensure_running)

    async def close(self) -> None:
        self._closed = True
        for child in self._idle + list(self._busy):
            child.kill()
        self._idle.clear()
        await asyncio.to_thread(multiprocessing.active_children)  # reaps the killed ones

    # --- calls ---

    async def call(self, kind: str, name: str, args: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        """(result, body) of `name`(**args) run in a query process."""
        async with self._child(kind, self.settings.query_seconds) as child:
            await self._send(child, name, args)
            body: list[bytes] = []
            while True:
                kind_, payload = await self._read(child)
                if kind_ == frames.CHUNK:
                    body.append(payload)
                elif kind_ == frames.RESULT:
                    return orjson.loads(payload), b"".join(body)
                elif kind_ == frames.ERROR:
                    raise Relayed(orjson.loads(payload))

    @contextlib.asynccontextmanager
    async def stream(self, name: str, args: dict[str, Any]) -> AsyncIterator["Streamed"]:
        """A call whose body is streamed: the Streamed's `head` is known once the call has
        checked its input (errors before it are raised here), then its chunks follow."""
        async with self._child(STREAM, None) as child:
            await self._send(child, name, args)
            streamed = Streamed(self, child)
            await streamed.begin()
            yield streamed

    async def _send(self, child: Child, name: str, args: dict[str, Any]) -> None:
        child.calls += 1
        child.settled = False
        child.writer.write(frames.frame(frames.CALL, orjson.dumps({"call": name, "args": args})))
        await child.writer.drain()

    async def _read(self, child: Child) -> tuple[bytes, bytes]:
        try:
            kind, payload = await frames.read(child.reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            raise self._lost(child) from None
        child.settled = kind in (frames.RESULT, frames.ERROR)
        return kind, payload

    def _lost(self, child: Child) -> DomainError:
        if child.over == "memory":
            return too_large(self.settings.query_memory_mb)
        if child.over == "time":
            return too_slow(self.settings.query_seconds)
        child.process.join(1)
        log.error("query process %d died (exit code %s) during a call", child.pid, child.process.exitcode)
        return QueryFailed(f"the query stopped unexpectedly (its process ended with code {child.process.exitcode}); "
                           "the service goes on, and this has been logged")

    # --- processes ---

    @contextlib.asynccontextmanager
    async def _child(self, kind: str, seconds: int | None) -> AsyncIterator[Child]:
        async with contextlib.AsyncExitStack() as turns:
            if kind == HEAVY:
                await turns.enter_async_context(self._turn(self._heavy, "heavy queries"))
            if kind in (HEAVY, STREAM):
                await turns.enter_async_context(self._turn(self._long, "heavy queries and streamed exports"))
            await turns.enter_async_context(self._turn(self._slots, "queries"))
            child = self._take_idle() or await self._spawn()
            self._busy.add(child)
            watch = asyncio.create_task(self._watch(child, seconds))
            try:
                yield child
            finally:
                watch.cancel()
                self._busy.discard(child)
                if (child.settled and not self._closed and child.over is None
                        and child.rss() < child.idle_rss + self.memory // 2):
                    self._idle.append(child)
                else:  # killed, left mid-call (the client went away), or grown: replaced next time
                    child.kill()

    def _take_idle(self) -> Child | None:
        """An idle process still alive; those that died while idle (killed from outside) are dropped."""
        while self._idle:
            child = self._idle.pop()
            if child.process.is_alive() and not child.reader.at_eof():
                return child
            child.kill()
        return None

    @contextlib.asynccontextmanager
    async def _turn(self, semaphore: asyncio.Semaphore, what: str) -> AsyncIterator[None]:
        try:
            if semaphore.locked():
                await asyncio.wait_for(semaphore.acquire(), self.settings.query_wait)
            else:
                await semaphore.acquire()
        except TimeoutError:
            error = Unavailable(f"too many {what} are running on this server; try again shortly", error_code="busy")
            error.headers = {"Retry-After": "2"}
            raise error from None
        try:
            yield
        finally:
            semaphore.release()

    async def _spawn(self) -> Child:
        ours, theirs = socket.socketpair()
        # the environment as it is now: the fork server's is the one the web process had at first
        process = _CONTEXT.Process(target=child_module.main, args=(theirs, self.settings, dict(os.environ)),
                                   daemon=True, name="exportd-query")
        try:
            await asyncio.to_thread(process.start)
        finally:
            theirs.close()
        reader, writer = await asyncio.open_connection(sock=ours)
        child = Child(process, reader, writer)
        child.idle_rss = child.rss()
        return child

    async def _watch(self, child: Child, seconds: int | None) -> None:
        """Kills `child` once it grows past the memory budget or runs past `seconds`."""
        loop = asyncio.get_running_loop()
        deadline = None if seconds is None else loop.time() + seconds
        limit = child.idle_rss + self.memory
        while True:
            await asyncio.sleep(WATCH_EVERY)
            if child.rss() > limit:
                child.over = "memory"
            elif deadline is not None and loop.time() > deadline:
                child.over = "time"
            else:
                continue
            log.warning("query process %d killed: past its %s budget", child.pid, child.over)
            child.kill()
            return


class Streamed:
    """A streamed call's head, then its body's chunks."""

    def __init__(self, pool: QueryPool, child: Child) -> None:
        self.pool, self.child = pool, child
        self.head: dict[str, Any] = {}
        self._first: bytes | None = None
        self._ended = False

    async def begin(self) -> None:
        """Reads up to the head and the first chunk, so that a call that fails early (before
        anything could be sent) fails here, as a plain error."""
        kind, payload = await self.pool._read(self.child)
        if kind == frames.ERROR:
            raise Relayed(orjson.loads(payload))
        self.head = orjson.loads(payload)
        self._first = await self.next()

    async def next(self) -> bytes | None:
        """The next chunk; None at the end."""
        if self._first is not None:
            first, self._first = self._first, None
            return first
        if self._ended:
            return None
        kind, payload = await self.pool._read(self.child)
        if kind == frames.CHUNK:
            return payload
        self._ended = True
        if kind == frames.ERROR:
            raise Relayed(orjson.loads(payload))
        return None
