"""Files sent to clients: one way to name them (Content-Disposition with an ASCII fallback and
the UTF-8 name) and to send a stored file (aiohttp's FileResponse answers Range requests)."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from aiohttp import web

from domain.errors import Gone


def disposition(file_name: str) -> str:
    ascii_name = file_name.encode("ascii", "replace").decode().replace('"', "")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(file_name)}"


def stored_file(path: Path, file_name: str, media_type: str) -> web.FileResponse:
    if not path.is_file():
        raise Gone("this file is no longer available")
    return web.FileResponse(path, headers={
        "Content-Type": media_type,
        "Content-Disposition": disposition(file_name),
        "Cache-Control": "private, max-age=0",
    })
