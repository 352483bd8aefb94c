"""A query process: it reads calls from its socket, runs them one at a time (api.isolation.
calls) and writes back their bodies and results. Whatever native code does in here — a crash,
a runaway allocation the web process kills it for — costs the call it was running, nothing
else. It ends when the web process closes the socket."""
from __future__ import annotations

import io
import logging
import os
import resource
import signal
import socket
from typing import Any

import orjson
import pyarrow as pa

from api.errors import known_error
from api.isolation import frames
from api.isolation.calls import CALLS, STREAMED, Env
from api.isolation.errors import too_large
from domain import logs
from domain.settings import Settings

log = logging.getLogger("exportd.query")
CHUNK = 256 * 1024


class ChunkOut(io.RawIOBase):
    """The body of a call, sent in CHUNK frames of about 256 KiB as it is written."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self.sock, self.buffer, self.position = sock, bytearray(), 0

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def write(self, data) -> int:  # type: ignore[override]
        self.buffer += data
        self.position += len(data)
        if len(self.buffer) >= CHUNK:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self.buffer:
            frames.send(self.sock, frames.CHUNK, bytes(self.buffer))
            self.buffer.clear()


def main(sock: socket.socket, settings: Settings, environ: dict[str, str]) -> None:
    os.environ.clear()
    os.environ.update(environ)  # boto3 reads its credentials there
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the web process, which closes us
    logs.setup()
    # memory goes back to the system between calls, so the web process's budget reads true RSS
    pa.set_memory_pool(pa.system_memory_pool())
    _cap_address_space(settings.query_memory_mb << 20)
    env = Env(settings)
    while True:
        try:
            kind, payload = frames.receive(sock)
        except (EOFError, ConnectionError):
            return
        request = orjson.loads(payload)
        out = ChunkOut(sock)
        try:
            args: dict[str, Any] = request["args"]
            if request["call"] in STREAMED:
                args["head"] = lambda meta: frames.send(sock, frames.HEAD, orjson.dumps(meta))
            result = CALLS[request["call"]](env, out, **args)
            out.flush()
            frames.send(sock, frames.RESULT, orjson.dumps(result))
        except (BrokenPipeError, ConnectionError):
            return
        except Exception as exc:
            fields = known_error(too_large(settings.query_memory_mb) if isinstance(exc, MemoryError) else exc)
            if fields is None:
                log.exception("query process %d: %s failed", os.getpid(), request.get("call"))
                fields = (500, "internal_error", "an internal error occurred; it has been logged", None, {})
            status, code, message, headers, extra = fields
            frames.send(sock, frames.ERROR, orjson.dumps(
                {"status": status, "error_code": code, "message": message, "headers": headers, "extra": extra}))
        finally:
            pa.system_memory_pool().release_unused()


def _cap_address_space(budget: int) -> None:
    """A hard stop for what the web process's sampling of RSS could miss, an allocation of
    gigabytes at once: past its address space an allocation fails here (MemoryError, which
    pyarrow's ArrowMemoryError is) instead of the machine running out. Generous, as address
    space counts thread stacks and mappings that never become resident."""
    with open("/proc/self/statm", "rb") as f:
        size = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    cap = size + max(8 * budget, 2 << 30)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
