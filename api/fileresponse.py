"""Files sent to clients: one way to name them (Content-Disposition with an ASCII fallback and
the UTF-8 name) and to send a stored file, with HEAD, conditional and Range requests answered
as RFC 9110 has them, whatever the storage:
- local data directory, or a bucket with EXPORTD_S3_DOWNLOADS=stream: the web process sends
  the file (sendfile for a local one; a bucket's object, or each range of it, streamed chunk by
  chunk) with ETag, Last-Modified and Accept-Ranges; 304 and 412 on preconditions; 206 with
  Content-Range for one range, multipart/byteranges for several; 416 with `Content-Range:
  bytes */SIZE` when none is satisfiable (api/ranges.py says what is ignored instead);
- a bucket, EXPORTD_S3_DOWNLOADS=redirect (the default): 302 to a presigned URL that ends no
  later than the export, for GET and HEAD alike (the bucket serves the bytes, Range included,
  and the headers asked).
HEAD answers GET's headers without the body; as RFC 9110 defines Range for GET alone, a HEAD
ignores Range and If-Range and describes the whole file. Authorisation and signed-link checks
happen before; a file that is gone answers 410."""
from __future__ import annotations

import asyncio
import base64
import io
from datetime import datetime, timedelta
from email.utils import format_datetime
from typing import BinaryIO
from urllib.parse import quote

from aiohttp import web

from api import ranges
from api.errors import json_error
from api.keys import SETTINGS, STORAGE
from api.preconditions import refused
from domain.errors import Gone
from domain.storage import LocalStorage, Stat, Storage
from domain.timeutil import now

PRESIGNED_FILE = timedelta(minutes=10)  # lifetime of the presigned URL of a file that does not expire; followed at once
PRESIGNED_MAX = timedelta(days=7)  # the longest a SigV4 presigned URL may live
CHUNK = 256 << 10
SENT_STEP = 4 << 20  # bytes sendfile sends at a time when the spans sent are counted


def disposition(file_name: str) -> str:
    ascii_name = file_name.encode("ascii", "replace").decode().replace('"', "")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(file_name)}"


def digest_validators(stat: Stat, sha256: str) -> tuple[Stat, dict[str, str]]:
    """With the file's SHA-256 known, its strong ETag is that digest (the same on every host
    and backend, as the bytes are) and Repr-Digest (RFC 9530) carries it too; Repr-Digest
    describes the whole file, so a 206 carries it as well."""
    if not sha256:
        return stat, {}
    header = base64.b64encode(bytes.fromhex(sha256)).decode()
    return Stat(stat.size, sha256, stat.modified), {"Repr-Digest": f"sha-256=:{header}:"}


async def stored_file(request: web.Request, key: str, file_name: str, media_type: str,
                      expires: datetime | None = None, sha256: str = "",
                      sent: list[list[int]] | None = None) -> web.StreamResponse:
    """The file stored under `key`, downloaded as `file_name`; a redirect to the bucket may
    not outlive `expires`. `sha256`, when known, gives the ETag and Repr-Digest. With `sent`,
    the [start, stop] byte spans that went out are added to it as they go (also when the
    transfer breaks off), and the web process sends the file itself: a bucket's redirect would
    not tell."""
    storage = request.app[STORAGE]
    try:
        stat = await asyncio.to_thread(storage.stat, key)
    except FileNotFoundError:
        raise Gone("this file is no longer available") from None
    stat, digests = digest_validators(stat, sha256)
    cache = {"Cache-Control": "private, max-age=0"}
    if not isinstance(storage, LocalStorage) and request.app[SETTINGS].s3_downloads == "redirect" and sent is None:
        lifetime = min(PRESIGNED_MAX, (expires - now()) if expires else PRESIGNED_FILE)
        seconds = max(1, int(lifetime.total_seconds()))
        url = await asyncio.to_thread(storage.presigned_url, key, seconds, disposition(file_name), media_type)
        return web.Response(status=302, headers={"Location": url, **cache})
    validators = {"ETag": f'"{stat.etag}"', "Last-Modified": format_datetime(stat.modified, usegmt=True),
                  **digests, **cache}
    status = refused(request, stat.etag, stat.modified)
    if status == 304:
        return web.Response(status=304, headers=validators)
    if status == 412:
        return json_error(412, "precondition_failed", "the file does not match the request's preconditions",
                          headers=validators)
    headers = {"Content-Type": media_type, "Content-Disposition": disposition(file_name),
               "Accept-Ranges": "bytes", **validators}
    wanted = None
    if request.method == "GET" and ranges.if_range_holds(request.headers.get("If-Range"), request.if_range,
                                                           stat.etag, stat.modified):
        try:
            wanted = ranges.requested(request.headers.get("Range"), stat.size)
        except ranges.Unsatisfiable as exc:
            return json_error(416, "range_not_satisfiable", str(exc),
                              headers={"Content-Range": f"bytes */{stat.size}", **validators})
    return await _send(request, storage, key, stat, headers, wanted, sent)


async def _send(request: web.Request, storage: Storage, key: str, stat: Stat, headers: dict[str, str],
                wanted: list[tuple[int, int]] | None, sent: list[list[int]] | None = None) -> web.StreamResponse:
    """The whole file (200), one range of it or several (206)."""
    pieces: list[tuple[bytes, int, int]] = [(b"", 0, stat.size)]
    tail = b""
    response = web.StreamResponse(status=200 if wanted is None else 206, headers=headers)
    if wanted is not None and len(wanted) == 1:
        (start, stop), = wanted
        pieces = [(b"", start, stop)]
        response.headers["Content-Range"] = f"bytes {start}-{stop - 1}/{stat.size}"
    elif wanted is not None:
        boundary, heads, tail = ranges.multipart(wanted, stat.size, headers["Content-Type"])
        pieces = [(head, start, stop) for head, (start, stop) in zip(heads, wanted)]
        response.headers["Content-Type"] = f"multipart/byteranges; boundary={boundary}"
    response.content_length = sum(len(head) + stop - start for head, start, stop in pieces) + len(tail)
    if request.method == "HEAD" or not stat.size:
        await response.prepare(request)
        await response.write_eof()
        if sent is not None and request.method == "GET":
            sent.append([0, 0])  # all of an empty file
        return response
    body = await _open(storage, key, pieces[0][1], pieces[0][2])  # before the headers, so that a 410 still can
    try:
        await response.prepare(request)
        for i, (head, start, stop) in enumerate(pieces):
            if i:
                body.close()
                body = await _open(storage, key, start, stop)
            if head:
                await response.write(head)
            await _copy(request, response, body, start, stop - start, sent)
        if tail:
            await response.write(tail)
    finally:
        body.close()
    await response.write_eof()
    return response


async def _open(storage: Storage, key: str, start: int, stop: int) -> BinaryIO:
    try:
        return await asyncio.to_thread(storage.open_range, key, start, stop)
    except FileNotFoundError:
        raise Gone("this file is no longer available") from None


async def _copy(request: web.Request, response: web.StreamResponse, body: BinaryIO, start: int, count: int,
                sent: list[list[int]] | None = None) -> None:
    """`count` bytes of `body` (read from `start`) to the client: a local file by sendfile,
    which asyncio falls back from by itself where the transport cannot (TLS); a bucket's
    stream chunk by chunk, read in a thread. With `sent`, its last span grows as the bytes go
    (sendfile then goes SENT_STEP bytes at a time, so a broken transfer still tells how far
    it got)."""
    span = [start, start]
    if sent is not None:
        sent.append(span)
    if isinstance(body, io.BufferedReader) and request.transport is not None and not response.compression:
        step = count if sent is None else SENT_STEP
        while span[1] < start + count:
            size = min(step, start + count - span[1])
            await asyncio.get_running_loop().sendfile(request.transport, body, span[1], size)
            span[1] += size
        return
    while count > 0 and (chunk := await asyncio.to_thread(body.read, min(CHUNK, count))):
        await response.write(chunk)
        count -= len(chunk)
        span[1] += len(chunk)
