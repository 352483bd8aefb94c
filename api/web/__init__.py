"""The web page at `/`: plain HTML, CSS and a little JavaScript (no build step, nothing from
another origin), using the same public API as every client. Assets are read once, served with
an ETag, and linked from the page with a content hash (`?v=`), so a browser may keep a
versioned asset for a year and still picks up a new release on its next visit."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from aiohttp import web

from domain.errors import NotFound

HERE = Path(__file__).parent
STATIC = {"app.js": "text/javascript", "pictures.js": "text/javascript", "style.css": "text/css"}  # every file /static/ serves
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",  # download links carry their signature in the URL
    "X-Content-Type-Options": "nosniff",
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    digest: str

    @classmethod
    def of(cls, body: bytes, content_type: str) -> "Asset":
        return cls(body, content_type, hashlib.sha256(body).hexdigest()[:20])

    @property
    def etag(self) -> str:
        return f'"{self.digest}"'


@cache
def static_assets() -> dict[str, Asset]:
    return {name: Asset.of((HERE / "static" / name).read_bytes(), kind) for name, kind in STATIC.items()}


@cache
def page_asset() -> Asset:
    html = (HERE / "index.html").read_text(encoding="utf-8")
    for name, asset in static_assets().items():
        html = html.replace(f'"/static/{name}"', f'"/static/{name}?v={asset.digest}"')
    return Asset.of(html.encode(), "text/html")


def _send(request: web.Request, asset: Asset, cache_control: str) -> web.Response:
    headers = {"ETag": asset.etag, "Cache-Control": cache_control, **PAGE_HEADERS}
    if request.headers.get("If-None-Match") == asset.etag:
        return web.Response(status=304, headers=headers)
    return web.Response(body=asset.body, content_type=asset.content_type, charset="utf-8", headers=headers)


async def index(request: web.Request) -> web.Response:
    return _send(request, page_asset(), REVALIDATE)


async def static(request: web.Request) -> web.Response:
    asset = static_assets().get(request.match_info["file_name"])
    if asset is None:
        raise NotFound(f"no file {request.match_info['file_name']!r}")
    versioned = request.query.get("v") == asset.digest
    return _send(request, asset, IMMUTABLE if versioned else REVALIDATE)
