"""The frames a query process and the web process exchange over their socket pair: a kind
byte, a 4-byte length, the payload. The web process reads them with asyncio; the query
process, which does one thing at a time, with blocking calls."""
from __future__ import annotations

import asyncio
import socket
import struct

HEADER = struct.Struct(">cI")
CALL = b"Q"  # web → query process: {"call": name, "args": {...}} as JSON
HEAD = b"H"  # the answer's metadata, known before its body (a streamed export's content type)
CHUNK = b"C"  # a piece of the answer's body
RESULT = b"R"  # the call ended: its result as JSON
ERROR = b"E"  # the call failed: {"status", "error_code", "message", "headers", "extra"} as JSON


def send(sock: socket.socket, kind: bytes, payload: bytes) -> None:
    sock.sendall(HEADER.pack(kind, len(payload)))
    if payload:
        sock.sendall(payload)


def receive(sock: socket.socket) -> tuple[bytes, bytes]:
    """The next frame; EOFError when the other end has closed."""
    kind, size = HEADER.unpack(_exactly(sock, HEADER.size))
    return kind, _exactly(sock, size)


def _exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        part = sock.recv(min(size - len(data), 1 << 20))
        if not part:
            raise EOFError("the socket was closed")
        data += part
    return bytes(data)


async def read(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """The next frame; asyncio.IncompleteReadError when the query process is gone."""
    kind, size = HEADER.unpack(await reader.readexactly(HEADER.size))
    return kind, await reader.readexactly(size) if size else b""


def frame(kind: bytes, payload: bytes) -> bytes:
    return HEADER.pack(kind, len(payload)) + payload
