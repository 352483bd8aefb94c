"""Files sent to clients: one way to name them (Content-Disposition with an ASCII fallback and
the UTF-8 name) and to send a stored file, with Range support whatever the storage:
- local data directory: aiohttp's FileResponse;
- a bucket, EXPORTD_S3_DOWNLOADS=redirect (the default): 302 to a presigned URL that ends no
  later than the export (the bucket serves the bytes, Range included, and the headers asked);
- a bucket, EXPORTD_S3_DOWNLOADS=stream: the web process streams the object (or the range
  asked: 206 with Content-Range, 416 when unsatisfiable) chunk by chunk.
Authorisation and signed-link checks happen before; a file that is gone answers 410."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from urllib.parse import quote

from aiohttp import web

from api.errors import json_error
from api.keys import SETTINGS, STORAGE
from domain.errors import Gone
from domain.storage import LocalStorage
from domain.timeutil import now

PRESIGNED_FILE = timedelta(minutes=10)  # lifetime of the presigned URL of a file that does not expire; followed at once
PRESIGNED_MAX = timedelta(days=7)  # the longest a SigV4 presigned URL may live
CHUNK = 256 << 10


def disposition(file_name: str) -> str:
    ascii_name = file_name.encode("ascii", "replace").decode().replace('"', "")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(file_name)}"


async def stored_file(request: web.Request, key: str, file_name: str, media_type: str,
                      expires: datetime | None = None) -> web.StreamResponse:
    """The file stored under `key`, downloaded as `file_name`; a redirect to the bucket may
    not outlive `expires`."""
    storage = request.app[STORAGE]
    headers = {"Content-Type": media_type, "Content-Disposition": disposition(file_name), "Cache-Control": "private, max-age=0"}
    if isinstance(storage, LocalStorage):
        path = storage.path(key)
        if not path.is_file():
            raise Gone("this file is no longer available")
        return web.FileResponse(path, headers=headers)
    try:
        size = await asyncio.to_thread(storage.size, key)
    except FileNotFoundError:
        raise Gone("this file is no longer available") from None
    if request.app[SETTINGS].s3_downloads == "redirect":
        lifetime = min(PRESIGNED_MAX, (expires - now()) if expires else PRESIGNED_FILE)
        seconds = max(1, int(lifetime.total_seconds()))
        url = await asyncio.to_thread(storage.presigned_url, key, seconds, headers["Content-Disposition"], media_type)
        return web.Response(status=302, headers={"Location": url, "Cache-Control": "private, max-age=0"})
    return await _streamed(request, storage, key, size, headers)


async def _streamed(request: web.Request, storage, key: str, size: int, headers: dict[str, str]) -> web.StreamResponse:
    try:
        wanted = byte_range(request, size)
    except ValueError:
        return json_error(416, "range_not_satisfiable", f"the range asked for is not within the file's {size} bytes",
                          headers={"Content-Range": f"bytes */{size}"})
    start, stop = wanted or (0, size)
    try:
        body = await asyncio.to_thread(storage.open_range, key, start, stop) if stop > start else None
    except FileNotFoundError:
        raise Gone("this file is no longer available") from None
    response = web.StreamResponse(status=206 if wanted else 200, headers={**headers, "Accept-Ranges": "bytes"})
    if wanted:
        response.headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    response.content_length = stop - start
    try:
        await response.prepare(request)
        while body is not None and request.method != "HEAD" and (chunk := await asyncio.to_thread(body.read, CHUNK)):
            await response.write(chunk)
    finally:
        if body is not None:
            body.close()
    await response.write_eof()
    return response


def byte_range(request: web.Request, size: int) -> tuple[int, int] | None:
    """The [start, stop) a Range header asks for, clipped to the file, or None without one;
    ValueError when it is malformed, multiple or unsatisfiable (a 416)."""
    asked = request.http_range
    if asked.start is None and asked.stop is None:
        return None
    start, stop = asked.start or 0, asked.stop
    if start < 0:  # bytes=-N: the last N bytes
        start, stop = max(0, size + start), size
    else:
        stop = size if stop is None else min(stop, size)
    if start >= size:
        raise ValueError("range starts past the end")
    return start, stop
