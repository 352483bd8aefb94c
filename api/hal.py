"""The OSDI Export resource and collection as HAL+JSON."""
from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from domain import exports as ex
from domain.exports import Export
from domain.signing import download_path
from domain.timeutil import iso

MEDIA_TYPE = "application/hal+json"
CACHE = "max-age=0, private, must-revalidate"


def hal_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(body), content_type=MEDIA_TYPE,
        headers={"Cache-Control": CACHE, **(headers or {})},
    )


def origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def curies(base: str) -> list[dict[str, Any]]:
    return [{"name": "osdi", "href": f"{base}/docs/v1/{{rel}}", "templated": True}]


def export_href(base: str, export_id: str) -> str:
    return f"{base}/api/v1/exports/{export_id}"


def export_resource(export: Export, base: str, origin_system: str, secret: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "identifiers": [f"exportd:{export.id}"],
        "origin_system": origin_system,
        "created_date": iso(export.created),
        "modified_date": iso(export.modified),
        "action_date": iso(export.action_date),
        "name": export.name,
        "owner": export.owner,  # exportd's own: whose export it is (an administrator sees everyone's)
        "status": export.status,
        "export_type": export.export_type,
        "dataset_id": export.dataset_id,  # exportd's own, as is owner: what osdi:resource names
    }
    if export.priority:
        body["priority"] = export.priority
    if export.changes_since:
        body["changes_since"] = export.changes_since
    if export.approved_date:
        body["approved_date"] = iso(export.approved_date)
    if export.processed_date:
        body["processed_date"] = iso(export.processed_date)
    if export.detail:
        body["detail"] = export.detail
    if export.options:
        body["options"] = export.options
    if export.query:
        body["query"] = export.query
    if export.status in (ex.PROCESSING, ex.READY):
        body["progress"] = export.progress
    if export.status == ex.READY and export.expires_at:
        body["download_link"] = base + download_path(secret, export.id, export.file_name, export.expires_at)
        body["expires_date"] = iso(export.expires_at)
        body["file_name"] = export.file_name
        body["file_size"] = export.size
        body["records_count"] = export.records_done
        if export.sha256:
            body["sha256"] = export.sha256
        if export.records_skipped:
            body["records_skipped"] = export.records_skipped
    if export.status == ex.EXPIRED and export.expires_at:
        body["expires_date"] = iso(export.expires_at)
    if export.warnings:
        body["warnings"] = export.warnings
    if export.notify_url:
        body["notify_url"] = export.notify_url
        body["notifications"] = export.notifications
    if export.expire_once_downloaded:
        body["expire_once_downloaded"] = True
    body["_links"] = {
        "self": {"href": export_href(base, export.id)},
        "osdi:resource": {"href": export.resource_href},
    }
    return body
