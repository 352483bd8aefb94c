"""The documentation the HAL curie points to: `/docs/v1/{rel}` for each osdi: link relation the
API answers with (osdi:exports, osdi:export, osdi:resource). A browser gets a page; a client
that asks for JSON (Accept: application/json) gets the OpenAPI document of the operations
behind that relation."""
from __future__ import annotations

import html

import orjson
from aiohttp import web

from api import openapi
from api.web import PAGE_HEADERS
from domain.errors import NotFound

# rel → (what it names, the route names behind it)
RELATIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "exports": ("A collection of exports: list them (newest first, paged) or create one, which returns at once.",
                ("exports-list", "exports-create")),
    "export": ("One export: its status (initializing, pending_approval, rejected, queued, processing, ready, "
               "expired, failed), its progress and, when ready, its download_link; delete it to cancel it.",
               ("exports-read", "exports-delete", "exports-approve", "exports-reject", "download")),
    "resource": ("What an export holds: a dataset of the Explore API, or a query over it (its records URL with "
                 "where, select, order_by, limit). OSDI's list URLs (…/api/v1/lists/ID) name the dataset ID.",
                 ("explore-dataset", "explore-records")),
}


def _wants_json(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return "json" in accept and "text/html" not in accept


async def relation(request: web.Request) -> web.Response:
    from api.routes import ROUTES  # the table imports this module's handler

    rel = request.match_info["rel"].removeprefix("osdi:")
    if rel not in RELATIONS:
        raise NotFound(f"no link relation osdi:{rel[:100]}; documented: "
                       f"{', '.join('osdi:' + name for name in RELATIONS)}")
    about, names = RELATIONS[rel]
    routes = [route for route in ROUTES if route.name in names]
    if _wants_json(request):
        document = openapi.build(routes)
        document["info"] = {**document["info"], "title": f"exportd: osdi:{rel}", "description": about}
        return web.Response(body=orjson.dumps(document), content_type="application/json")
    items = "".join(f"<li><code>{route.method} {html.escape(route.path)}</code> — "
                    f"{html.escape(route.operation.get('summary', ''))}</li>" for route in routes)
    page = (f"<!doctype html><html lang=en><meta charset=utf-8><title>osdi:{rel} — exportd</title>"
            f"<h1>osdi:{rel}</h1><p>{html.escape(about)}</p><ul>{items}</ul>"
            f"<p>The same URL answers the OpenAPI document of these operations to <code>Accept: application/json</code>; "
            f"the whole API's is at <a href=\"/api/openapi.json\">/api/openapi.json</a>.</p></html>")
    return web.Response(text=page, content_type="text/html", headers=PAGE_HEADERS)
