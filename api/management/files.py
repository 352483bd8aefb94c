"""Files: POST /files/ (multipart field `file`, streamed to storage, 413 past the limit), list,
retrieve, download_file."""
from __future__ import annotations

from typing import AsyncIterator

from aiohttp import BodyPartReader, web

from api.bodies import query_int
from api.fileresponse import stored_file
from api.keys import SETTINGS
from api.management.common import administrator, files, json_response
from domain.errors import Invalid
from domain.files import TooLarge

CHUNK = 256 * 1024


async def upload(request: web.Request) -> web.Response:
    await administrator(request)
    limit = request.app[SETTINGS].max_upload_bytes
    if request.content_length is not None and request.content_length > limit + 64 * 1024:  # the file plus its multipart framing
        raise TooLarge(f"the upload is larger than the {limit:,}-byte limit (EXPORTD_MAX_UPLOAD_BYTES)")
    if not request.content_type.startswith("multipart/"):
        raise Invalid("send the file as multipart/form-data, in a field named 'file'")
    reader = await request.multipart()
    while True:
        part = await reader.next()
        if part is None:
            raise Invalid("the multipart body has no field named 'file'")
        if isinstance(part, BodyPartReader) and part.name == "file":
            break
        await part.release()  # type: ignore[union-attr]

    async def chunks() -> AsyncIterator[bytes]:
        while chunk := await part.read_chunk(CHUNK):
            yield chunk

    stored = await files(request).upload(part.filename, part.headers.get("Content-Type"), chunks(), limit)
    return json_response(stored.view(), status=201)


async def collection(request: web.Request) -> web.Response:
    await administrator(request)
    limit = query_int(request, "limit", 20, 0, 100)
    offset = query_int(request, "offset", 0, 0)
    total, page = await files(request).list(limit, offset)
    return json_response({"total_count": total, "limit": limit, "offset": offset, "results": [f.view() for f in page]})


async def read(request: web.Request) -> web.Response:
    await administrator(request)
    return json_response((await files(request).get(request.match_info["file_id"])).view())


async def file_response(request: web.Request, key: str, filename: str, mimetype: str) -> web.StreamResponse:
    """A stored file with its name and type, Range requests answered."""
    return await stored_file(request, key, filename, mimetype)


async def download(request: web.Request) -> web.StreamResponse:
    await administrator(request)
    stored = await files(request).get(request.match_info["file_id"])
    return await file_response(request, stored.key, stored.filename, stored.mimetype)
