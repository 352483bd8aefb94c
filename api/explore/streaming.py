"""Streaming a writer's output to an HTTP response: the writer runs in a thread and writes to a
QueueSink, whose chunks the event loop sends as they come. The queue is bounded, so a slow
client slows the writer instead of filling memory; a client that leaves stops the writer."""
from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import threading
from typing import Callable

from aiohttp import web

log = logging.getLogger("exportd.api")

CHUNK = 256 * 1024
QUEUE_CHUNKS = 8
_END = None


class ClientGone(Exception):
    """The client went away; the writer stops."""


class QueueSink(io.RawIOBase):
    """A write-only binary file whose bytes go, in chunks, onto an asyncio queue."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue, stop: threading.Event):
        super().__init__()
        self.loop, self.queue, self.stop = loop, queue, stop
        self.buffer = bytearray()
        self.position = 0

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def write(self, data) -> int:  # type: ignore[override]
        if self.stop.is_set():
            raise ClientGone()
        size = len(data)
        self.buffer += data
        self.position += size
        if len(self.buffer) >= CHUNK:
            self._put(bytes(self.buffer))
            self.buffer.clear()
        return size

    def finish(self) -> None:
        if self.buffer:
            self._put(bytes(self.buffer))
            self.buffer.clear()
        self._put(_END)

    def _put(self, item: bytes | None) -> None:
        future = asyncio.run_coroutine_threadsafe(self.queue.put(item), self.loop)
        while True:
            try:
                future.result(timeout=1)
                return
            except TimeoutError:
                if self.stop.is_set():
                    future.cancel()
                    raise ClientGone() from None


async def stream(request: web.Request, response: web.StreamResponse, produce: Callable[[QueueSink], None]) -> web.StreamResponse:
    """Run produce(sink) in a thread and send what it writes. produce must call sink.finish()
    when done; if it raises, the response is cut short (the client sees an incomplete body,
    never a complete-looking truncated file)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue(maxsize=QUEUE_CHUNKS)
    stop = threading.Event()
    sink = QueueSink(loop, queue, stop)
    await response.prepare(request)
    work = loop.run_in_executor(None, produce, sink)
    try:
        while True:
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({getter, work}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                await work  # the producer ended without finishing: raise its error
                raise RuntimeError("the writer stopped before finishing")
            chunk = getter.result()
            if chunk is _END:
                break
            await response.write(chunk)
        await work
        await response.write_eof()
    except BaseException as exc:
        stop.set()
        while not queue.empty():
            queue.get_nowait()
        with contextlib.suppress(BaseException):
            await work
        if not isinstance(exc, (ConnectionResetError, asyncio.CancelledError)):
            log.exception("streamed export failed on %s", request.path)
        if request.transport is not None:
            request.transport.close()  # cut the chunked body short: the client sees an error
        if isinstance(exc, asyncio.CancelledError):
            raise
    return response
