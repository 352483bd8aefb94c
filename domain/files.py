"""Uploaded files (management API /files/): kept in storage under `files/<file_id><ext>`, described
in Redis, named by `odsfile://` urls in resources and alternative exports.

An upload is streamed to storage chunk by chunk through Storage.writing_async (visible only when
whole) and refused past the size limit. A file's url is `odsfile://<file_id>/<filename>`;
`odsfile://<file_id>` and `odsfile://<filename>` (the latest file uploaded under that name, as
the platform's examples write it) name it too. A url is only ever looked up, never turned into
a path: anything else (other schemes, absolute paths, `..`) is refused with 400.
"""
from __future__ import annotations

import mimetypes
import re
import secrets
from dataclasses import asdict, dataclass
from typing import Any, AsyncIterator
from urllib.parse import unquote

import orjson
from redis.asyncio import Redis

from domain import keys
from domain.errors import DomainError, Invalid, NotFound
from domain.storage import Storage
from domain.timeutil import iso, now

SCHEME = "odsfile://"
FILE_ID = re.compile(r"^[0-9a-f]{32}$")
EXTENSION = re.compile(r"^\.[a-z0-9]{1,10}$")
UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]')
MAX_NAME = 200


class TooLarge(DomainError):
    status = 413
    error_code = "request_too_large"


@dataclass
class StoredFile:
    file_id: str
    filename: str
    mimetype: str
    size: int
    created: str
    key: str  # storage key

    @property
    def url(self) -> str:
        return f"{SCHEME}{self.file_id}/{self.filename}"

    def view(self) -> dict[str, Any]:
        return {"file_id": self.file_id, "url": self.url, "filename": self.filename,
                "properties": {"mimetype": self.mimetype, "size": self.size}, "created": self.created}


def clean_filename(raw: str | None) -> str:
    """The name a file is kept under: its last path component (percent-decoded, as some
    clients send it), without control or path characters; "upload" when nothing is left."""
    name = unquote(raw or "").replace("\\", "/").rsplit("/", 1)[-1]  # some clients percent-encode it
    name = UNSAFE.sub("_", name).strip(" .")
    if len(name) > MAX_NAME:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: MAX_NAME - len(ext) - 1] + dot + ext) if dot and len(ext) <= 10 else name[:MAX_NAME]
    return name or "upload"


class FileRepo:
    def __init__(self, redis: Redis, storage: Storage):
        self.redis = redis
        self.storage = storage

    async def upload(self, filename: str | None, content_type: str | None, chunks: AsyncIterator[bytes],
                     max_bytes: int) -> StoredFile:
        """Stream `chunks` into a new file; TooLarge (413) past max_bytes, and nothing kept."""
        name = clean_filename(filename)
        file_id = secrets.token_hex(16)
        suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
        key = f"files/{file_id}{suffix if EXTENSION.match(suffix) else ''}"
        size = 0
        async with self.storage.writing_async(key) as out:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise TooLarge(f"the file is larger than the {max_bytes:,}-byte upload limit "
                                   "(EXPORTD_MAX_UPLOAD_BYTES)")
                out.write(chunk)
        guessed = mimetypes.guess_type(name)[0]
        given = (content_type or "").split(";")[0].strip()
        mimetype = guessed or (given if given and given != "application/octet-stream" else "") or "application/octet-stream"
        stored = StoredFile(file_id, name, mimetype, size, iso(now()) or "", key)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.file(file_id), orjson.dumps(asdict(stored)))
            pipe.zadd(keys.FILES, {file_id: now().timestamp()})
            pipe.hset(keys.FILE_NAMES, name, file_id)
            await pipe.execute()
        return stored

    async def get(self, file_id: str) -> StoredFile:
        raw = await self.redis.get(keys.file(file_id)) if FILE_ID.match(file_id) else None
        if raw is None:
            raise NotFound(f"no file {file_id!r}")
        return StoredFile(**orjson.loads(raw))

    async def list(self, limit: int, offset: int) -> tuple[int, list[StoredFile]]:
        total = await self.redis.zcard(keys.FILES)
        ids = await self.redis.zrevrange(keys.FILES, offset, offset + limit - 1) if limit else []
        raws = await self.redis.mget([keys.file(i) for i in ids]) if ids else []
        return total, [StoredFile(**orjson.loads(r)) for r in raws if r is not None]

    async def resolve(self, url: Any) -> StoredFile:
        """The uploaded file an odsfile:// url names; 400 for anything else."""
        if not isinstance(url, str) or not url.startswith(SCHEME):
            raise Invalid(f"the url must name an uploaded file as {SCHEME}NAME (upload it to /api/management/v2/files/ first)",
                          error_code="invalid_url")
        name = url[len(SCHEME):]
        parts = name.split("/")
        if not name or name.startswith("/") or "\\" in name or ".." in parts or "." in parts or len(parts) > 2:
            raise Invalid(f"{url!r} does not name a file of the file store", error_code="invalid_url")
        if len(parts) == 2:
            file_id, filename = parts
            if FILE_ID.match(file_id):
                try:
                    found = await self.get(file_id)
                except NotFound:
                    found = None
                if found is not None and found.filename == filename:
                    return found
            raise Invalid(f"no uploaded file {url!r}", error_code="unknown_file")
        if FILE_ID.match(name):
            try:
                return await self.get(name)
            except NotFound:
                pass
        file_id = await self.redis.hget(keys.FILE_NAMES, name)
        if file_id is None:
            raise Invalid(f"no uploaded file {url!r}", error_code="unknown_file")
        return await self.get(file_id)
