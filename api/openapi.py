"""GET /api/openapi.json: the OpenAPI document of every route in api.routes.ROUTES."""
from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from api.throttle import EXPLORE_PREFIXES
from domain.exports import NOTIFIED, STATUSES
from domain.webhooks import MAX_URL
from domain.query import MAX_LIMIT
from formats import REGISTRY

ERROR = {
    "type": "object", "required": ["error_code", "message"],
    "properties": {"error_code": {"type": "string"}, "message": {"type": "string"},
                   "error": {"type": "string", "description": "The message again, for OpenDataSoft's older clients."},
                   "location": {"type": "string", "format": "uri", "description":
                                "With 503 not_replicated (a write no replica confirmed, EXPORTD_REDIS_REPLICAS): the "
                                "resource the change made, which exists on the primary; look there before trying again."}},
}


def _schemas() -> dict[str, Any]:
    link = {"type": "object", "properties": {"href": {"type": "string", "format": "uri"}}}
    return {
        "Error": ERROR,
        "ExportRequest": {
            "type": "object", "required": ["export_type", "_links"],
            "properties": {
                "export_type": {"type": "string", "enum": REGISTRY.all_names()},
                "name": {"type": "string", "maxLength": 2000},
                "options": {"type": "object", "description": "Format options (see x-formats, with their types and "
                            "bounds: booleans are JSON booleans); unknown ones are refused with 400."},
                "query": {"type": "object", "additionalProperties": False, "properties": {
                    "select": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
                    **{name: {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
                       for name in ("where", "refine", "exclude")},
                    "group_by": {"type": "string"}, "order_by": {"type": "string"},
                    "limit": {"type": "integer", "minimum": -1, "maximum": MAX_LIMIT},
                }, "description": "ODSQL; at most 1,000 terms and 10,000 IN-list values over all clauses."},
                "changes_since": {"type": "string", "maxLength": 100, "description": (
                    "A delta export (exportd's own): only the records added, changed or removed since this version "
                    "(…/versions) or snapshot (…/snapshots) of the dataset, matched on its key_fields, each with a "
                    "_change field (added, changed, removed; a removed record holds only its key).")},
                "expire_once_downloaded": {"type": "boolean", "default": False, "description": (
                    "OSDI's 'once downloaded … the export may have the status of expired': the export expires, and "
                    "its file goes, once every byte of it has been sent (a download resumed with Range still "
                    "works until then). Such a file is always sent by the web process, never by a redirect.")},
                "_links": {"type": "object", "required": ["osdi:resource"], "properties": {"osdi:resource": {
                    **link, "description": "The dataset: http://HOST/api/v2/catalog/datasets/DATASET_ID, its "
                                           "records URL with a query, or OSDI's http://HOST/api/v1/lists/DATASET_ID"}}},
                "notify_url": {"type": "string", "format": "uri", "maxLength": MAX_URL, "description": (
                    "http(s) URL told of each terminal change (ready, failed, rejected, expired) by a POST of "
                    "{\"event\": \"export.<status>\", \"export\": <the export>}, signed with X-Exportd-Signature: "
                    "sha256=<hex HMAC-SHA256 of the body under GET /api/v1/me's webhook_secret>; a 2xx answer is a "
                    "delivery, anything else is tried again with growing delays for 24 h; redirects are not followed. "
                    "A host resolving to a private or loopback address is refused (400 refused_notify_url) unless "
                    "the service allows them; a link-local one (cloud metadata) always.")},
            },
        },
        "Export": {
            "type": "object",
            "properties": {
                "identifiers": {"type": "array", "items": {"type": "string"}},
                "origin_system": {"type": "string"},
                "owner": {"type": "string", "description": "The user who asked for it (exportd's own field); "
                          "anonymous:<hash> for a visitor without a token, system:prepared for an export prepared at publish."},
                "dataset_id": {"type": "string", "description": "The dataset exported (exportd's own field)."},
                "priority": {"type": "integer", "description": "Set by an administrator; absent when 0."},
                "changes_since": {"type": "string", "description": "A delta export's earlier version or snapshot."},
                "created_date": {"type": "string", "format": "date-time"},
                "modified_date": {"type": "string", "format": "date-time"},
                "action_date": {"type": "string", "format": "date-time"},
                "approved_date": {"type": "string", "format": "date-time"},
                "processed_date": {"type": "string", "format": "date-time"},
                "name": {"type": "string"},
                "status": {"type": "string", "enum": list(STATUSES)},
                "detail": {"type": "string"},
                "export_type": {"type": "string"},
                "download_link": {"type": "string", "format": "uri", "description": "Signed; valid until expires_date."},
                "expires_date": {"type": "string", "format": "date-time"},
                "file_name": {"type": "string"},
                "file_size": {"type": "integer"},
                "records_count": {"type": "integer"},
                "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$",
                           "description": "Ready: the hex SHA-256 of the file; its download's strong ETag and Repr-Digest."},
                "progress": {"type": "object", "properties": {"records_done": {"type": "integer"}, "records_total": {"type": "integer"}}},
                "warnings": {"type": "array", "items": {"type": "string"}},
                "queue_position": {"type": "integer", "minimum": 1, "description": "Queued: 1 is next; as the queue stands now."},
                "estimated_ready_date": {"type": ["string", "null"], "format": "date-time", "description": (
                    "Queued: when it should be ready, the exports ahead laid on the live workers' slots by the formats' "
                    "measured cost; null with no live worker or no measure yet.")},
                "notify_url": {"type": "string", "format": "uri"},
                "notifications": {"type": "array", "description": "Each webhook attempt, oldest first.", "items": {
                    "type": "object", "properties": {
                        "event": {"type": "string", "enum": [f"export.{s}" for s in NOTIFIED]},
                        "attempt": {"type": "integer", "minimum": 1},
                        "date": {"type": "string", "format": "date-time"},
                        "status_code": {"type": "integer", "description": "The receiver's answer."},
                        "error": {"type": "string", "description": "Why there was no answer (or the address was refused)."},
                        "next_attempt_in": {"type": "number", "description": "Seconds until the next attempt."}}}},
                "expire_once_downloaded": {"type": "boolean", "description": "Present (true) when asked for."},
                "_links": {"type": "object", "properties": {"self": link, "osdi:resource": link}},
            },
        },
        "ExportCollection": {
            "type": "object",
            "properties": {
                "total_pages": {"type": "integer"}, "per_page": {"type": "integer"}, "page": {"type": "integer"},
                "total_records": {"type": "integer"}, "_links": {"type": "object"},
                "_embedded": {"type": "object", "properties": {"osdi:exports": {"type": "array", "items": {"$ref": "#/components/schemas/Export"}}}},
            },
        },
        "Decision": {"type": "object", "properties": {"detail": {"type": "string"}}},
        "Estimate": {
            "type": "object", "required": ["records_total", "estimated_bytes", "estimated_seconds"],
            "properties": {
                "export_type": {"type": "string"},
                "records_total": {"type": "integer", "description": "Counted on the dataset's version with the query."},
                "estimated_bytes": {"type": ["integer", "null"], "description": "records × the format's measured bytes "
                                    "per record; null before any export was written."},
                "estimated_seconds": {"type": ["number", "null"], "description": "records × the format's measured "
                                      "seconds per record (writing alone, not the wait in the queue)."},
                "measured_exports": {"type": "integer", "description": "How many written exports the figures come from."},
                "measured_format": {"type": "boolean", "description": "False: this format was never written yet, "
                                    "the figures are those of all formats together."},
            },
        },
    }


ERR = {"$ref": "#/components/responses/Error"}


def _operation(route) -> dict[str, Any]:
    """The route's operation, with the errors any operation may answer: 413 for a body over
    the limit, 503 while Redis is away (every route but this document needs it)."""
    operation = {"operationId": route.name, **route.operation}
    responses = dict(operation.get("responses", {}))
    if "requestBody" in operation:
        responses.setdefault("413", ERR)
    if route.name != "openapi":
        responses.setdefault("503", ERR)
    if route.path.startswith(EXPLORE_PREFIXES):  # per-client budgets, api/throttle.py
        responses.setdefault("429", ERR)
    operation["responses"] = responses
    return operation


def build(routes, head_too=frozenset()) -> dict[str, Any]:
    """The document of `routes`; a GET whose handler is in `head_too` answers HEAD as well."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        operation = _operation(route)
        paths.setdefault(route.path, {})[route.method.lower()] = operation
        if route.method == "GET" and route.handler in head_too:
            paths[route.path]["head"] = {**operation, "operationId": f"{route.name}-head",
                                         "summary": f"The headers of GET {route.path}, without its body."}
    return {
        "openapi": "3.1.0",
        "info": {"title": "exportd", "version": "0.1.0",
                 "description": "Asynchronous exports of open-data datasets: OSDI exports, signed expiring downloads."},
        "paths": paths,
        "components": {
            "schemas": _schemas(),
            "responses": {"Error": {"description": "A JSON error.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}},
            "securitySchemes": {
                "OsdiToken": {"type": "apiKey", "in": "header", "name": "OSDI-API-Token"},
                "ApiKey": {"type": "apiKey", "in": "header", "name": "Authorization", "description": "Apikey <token>"},
                "ApiKeyQuery": {"type": "apiKey", "in": "query", "name": "apikey"},
                "BasicAuth": {"type": "http", "scheme": "basic", "description": "Management API: users given a password by the operator command."},
            },
        },
        "x-formats": [
            {"name": f.name, "aliases": list(f.aliases), "extension": f.extension, "media_type": f.media_type,
             "needs": sorted(f.needs), "options": [o.describe() for o in f.all_options.values()]}
            for f in REGISTRY
        ],
    }


async def document(request: web.Request) -> web.Response:
    from api.routes import HEAD_TOO, ROUTES  # the table imports this module's handler

    return web.Response(body=orjson.dumps(build(ROUTES, HEAD_TOO)), content_type="application/json")
