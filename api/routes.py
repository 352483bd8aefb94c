"""Every route in one table, each with its OpenAPI operation, so the served document and the
router are built from the same list."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from aiohttp import web

from api import downloads, exports, health, me, openapi, ranges, relations, users, web as page
from api.explore import attached
from api.explore import exports as explore_exports
from api.explore import routes as explore_routes
from api.management import alternative_exports, files
from api.management import routes as management_routes
from domain.datasets import DATASET_ID
from domain.exports import STATUSES

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ERR = {"$ref": "#/components/responses/Error"}
TOKEN = [{"OsdiToken": []}, {"ApiKey": []}]
OR_ANONYMOUS = [*TOKEN, {}]  # without a token too, while EXPORTD_ANONYMOUS_EXPORTS allows it
EXPORT_ID = {"name": "export_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
HAL_EXPORT = {"application/hal+json": {"schema": {"$ref": "#/components/schemas/Export"}}}
USER = {"type": "object", "properties": {"name": {"type": "string"}, "admin": {"type": "boolean"}}}
ME = {**USER, "properties": {**USER["properties"], "webhook_secret": {
    "type": "string", "description": "Signs the webhooks of the caller's exports (HMAC-SHA256 key)."}}}

_HEADER = {"schema": {"type": "string"}}
DOWNLOAD_PARAMETERS = [
    EXPORT_ID,
    {"name": "file_name", "in": "path", "required": True, "schema": {"type": "string"}},
    {"name": "expires", "in": "query", "required": True, "schema": {"type": "integer"}},
    {"name": "signature", "in": "query", "required": True, "schema": {"type": "string"}},
    *({"name": name, "in": "header", "required": False, "schema": {"type": "string"}, "description": about} for name, about in (
        ("Range", f"bytes=FIRST-LAST, bytes=FIRST-, bytes=-SUFFIX, or up to {ranges.MAX_RANGES} of them separated by commas. "
                  f"Another unit, an invalid header, overlapping ranges or more than {ranges.MAX_RANGES} are ignored "
                  "(200, the whole file)."),
        ("If-Range", "An ETag (compared strongly) or the Last-Modified date (exactly): when it does not match, "
                     "200 with the whole file."),
        ("If-None-Match", "304 when one of these ETags is the file's."),
        ("If-Match", "412 unless one of these ETags is the file's (strong comparison)."))),
]
DOWNLOAD_RESPONSES = {
    "200": {"description": "The file. An export's ETag is its sha256 (quoted) and Repr-Digest (RFC 9530) "
                           "`sha-256=:BASE64:` carries the same digest.",
            "headers": {"ETag": _HEADER, "Last-Modified": _HEADER, "Accept-Ranges": _HEADER, "Repr-Digest": _HEADER}},
    "206": {"description": "Part of the file: one range, with Content-Range; several, as multipart/byteranges. "
                           "Repr-Digest is the whole file's.",
            "headers": {"Content-Range": _HEADER, "ETag": _HEADER, "Last-Modified": _HEADER, "Repr-Digest": _HEADER}},
    "302": {"description": "With a bucket and EXPORTD_S3_DOWNLOADS=redirect: to a presigned URL of the file."},
    "304": {"description": "Not modified (If-None-Match)."},
    "403": ERR, "404": ERR, "410": ERR, "412": ERR,
    "416": {"description": "No range asked for is within the file (bytes=-0, a first byte past the end); "
                           "Content-Range: bytes */SIZE.",
            "headers": {"Content-Range": _HEADER},
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
}


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    name: str
    operation: dict[str, Any] = field(default_factory=dict)


ROUTES: list[Route] = [
    Route("POST", "/api/v1/exports", exports.create, "exports-create", {
        "summary": "Create an export (OSDI): returns at once; poll the resource until status is ready. Without a "
                   "token, a visitor may export a public dataset (EXPORTD_ANONYMOUS_EXPORTS), limited per IP address, "
                   "and follows it by its URL.",
        "tags": ["OSDI exports"], "security": OR_ANONYMOUS,
        "requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ExportRequest"}}}},
        "responses": {"201": {"description": "Created; Location names the export.", "content": HAL_EXPORT},
                      "400": ERR, "401": ERR, "429": ERR, "503": ERR},
    }),
    Route("POST", "/api/v1/exports/estimate", exports.estimate, "exports-estimate", {
        "summary": "What POST /api/v1/exports would make of the same body, without making anything: the records "
                   "it would hold, and its size and duration from the format's measured cost per record.",
        "tags": ["OSDI exports"], "security": OR_ANONYMOUS,
        "requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ExportRequest"}}}},
        "responses": {"200": {"description": "The estimate.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Estimate"}}}},
                      "400": ERR, "401": ERR, "503": ERR},
    }),
    Route("GET", "/api/v1/exports", exports.collection, "exports-list", {
        "summary": "The caller's exports (an administrator's: everyone's), newest first, HAL+JSON.",
        "tags": ["OSDI exports"], "security": TOKEN,
        "parameters": [
            {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": exports.MAX_PAGE, "default": 1}},
            {"name": "per_page", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 25}},
            {"name": "status", "in": "query", "schema": {"type": "string", "enum": list(STATUSES)},
             "description": "Only exports in this status (the approval queue: pending_approval), newest into that status first."},
            {"name": "dataset", "in": "query", "schema": {"type": "string", "pattern": DATASET_ID.pattern},
             "description": "Only exports of this dataset."},
        ],
        "responses": {"200": {"description": "A page of exports.", "content": {"application/hal+json": {"schema": {"$ref": "#/components/schemas/ExportCollection"}}}},
                      "400": ERR, "401": ERR},
    }),
    Route("GET", "/api/v1/exports/{export_id}", exports.read, "exports-read", {
        "summary": "One export: status, progress while processing, download_link when ready. With ?wait=N the "
                   "answer waits up to N seconds (≤ 60) for a change of status; non-final exports carry Retry-After. "
                   "An export made without a token is answered to whoever knows its id.",
        "tags": ["OSDI exports"], "security": OR_ANONYMOUS,
        "parameters": [EXPORT_ID, {"name": "wait", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 60}}],
        "responses": {"200": {"description": "The export.", "content": HAL_EXPORT}, "400": ERR, "401": ERR, "404": ERR},
    }),
    Route("DELETE", "/api/v1/exports/{export_id}", exports.delete, "exports-delete", {
        "summary": "Cancel and delete an export; a running worker stops between batches. PUT is not supported (405).",
        "tags": ["OSDI exports"], "security": OR_ANONYMOUS, "parameters": [EXPORT_ID],
        "responses": {"200": {"description": "Deleted.", "content": {"application/hal+json": {"schema": {
            "type": "object", "properties": {"notice": {"type": "string"}}}}}}, "401": ERR, "404": ERR},
    }),
    Route("POST", "/api/v1/exports/{export_id}/approve", exports.approve, "exports-approve", {
        "summary": "Approve an export waiting for approval (administrators).",
        "tags": ["Administration"], "security": TOKEN, "parameters": [EXPORT_ID],
        "requestBody": {"required": False, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Decision"}}}},
        "responses": {"200": {"description": "Queued.", "content": HAL_EXPORT}, "400": ERR, "401": ERR, "403": ERR, "404": ERR, "409": ERR},
    }),
    Route("POST", "/api/v1/exports/{export_id}/priority", exports.prioritize, "exports-priority", {
        "summary": "Give an export still waiting to run a priority from 1 to 9, or 0 for none (administrators): "
                   "workers take queued exports of higher priority first, then share their slots fairly between owners.",
        "tags": ["Administration"], "security": TOKEN, "parameters": [EXPORT_ID],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["priority"],
            "properties": {"priority": {"type": "integer", "minimum": 0, "maximum": exports.MAX_PRIORITY}}}}}},
        "responses": {"200": {"description": "Its priority set.", "content": HAL_EXPORT},
                      "400": ERR, "401": ERR, "403": ERR, "404": ERR, "409": ERR},
    }),
    Route("POST", "/api/v1/exports/{export_id}/reject", exports.reject, "exports-reject", {
        "summary": "Reject an export waiting for approval, with a detail (administrators).",
        "tags": ["Administration"], "security": TOKEN, "parameters": [EXPORT_ID],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Decision"}}}},
        "responses": {"200": {"description": "Rejected.", "content": HAL_EXPORT}, "400": ERR, "401": ERR, "403": ERR, "404": ERR, "409": ERR},
    }),
    Route("GET", "/api/v1/users", users.collection, "users-list", {
        "summary": "Every user: name and whether an administrator (administrators).",
        "tags": ["Administration"], "security": TOKEN,
        "responses": {"200": {"description": "The users.", "content": {"application/json": {"schema": {
            "type": "object", "properties": {"users": {"type": "array", "items": USER}}}}}}, "401": ERR, "403": ERR},
    }),
    Route("POST", "/api/v1/users", users.create, "users-create", {
        "summary": "Add a user and give them a first API token, shown only in this answer (administrators).",
        "tags": ["Administration"], "security": TOKEN,
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["name"],
            "properties": {"name": {"type": "string", "pattern": "^[A-Za-z0-9_.@-]{1,64}$"}, "admin": {"type": "boolean"}}}}}},
        "responses": {"201": {"description": "The user and their token.", "content": {"application/json": {"schema": {
            **USER, "properties": {**USER["properties"], "token": {"type": "string"}}}}}},
            "400": ERR, "401": ERR, "403": ERR, "409": ERR},
    }),
    Route("POST", "/api/v1/users/{name}/tokens", users.new_token, "users-token", {
        "summary": "A fresh API token for a user, shown only in this answer; earlier tokens keep working (administrators).",
        "tags": ["Administration"], "security": TOKEN,
        "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {"201": {"description": "The token.", "content": {"application/json": {"schema": {
            "type": "object", "properties": {"name": {"type": "string"}, "token": {"type": "string"}}}}}},
            "401": ERR, "403": ERR, "404": ERR},
    }),
    Route("PUT", "/api/v1/users/{name}/password", users.set_password, "users-password", {
        "summary": "Set a user's password, for HTTP Basic on the management API; only its scrypt hash is kept (administrators).",
        "tags": ["Administration"], "security": TOKEN,
        "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["password"], "properties": {"password": {"type": "string", "minLength": 1}}}}}},
        "responses": {"200": {"description": "Set.", "content": {"application/json": {"schema": {
            "type": "object", "properties": {"name": {"type": "string"}, "notice": {"type": "string"}}}}}},
            "400": ERR, "401": ERR, "403": ERR, "404": ERR},
    }),
    Route("GET", "/downloads/{export_id}/{file_name}", downloads.download, "download", {
        "summary": "Download a ready export through its signed, expiring link: Range (one or several ranges), "
                   "If-Range, If-None-Match and If-Match answered as RFC 9110 has them.",
        "tags": ["Downloads"], "parameters": DOWNLOAD_PARAMETERS, "responses": DOWNLOAD_RESPONSES,
    }),
    Route("HEAD", "/downloads/{export_id}/{file_name}", downloads.download, "download-head", {
        "summary": "The download's headers (Content-Length, ETag, Last-Modified, Accept-Ranges) without the file; "
                   "Range is defined for GET alone, so a HEAD describes the whole file.",
        "tags": ["Downloads"], "parameters": DOWNLOAD_PARAMETERS,
        "responses": {code: answer for code, answer in DOWNLOAD_RESPONSES.items() if code not in ("206", "416")},
    }),
    Route("GET", "/health", health.health, "health", {
        "summary": "Whether Redis answers and takes writes, workers have been seen recently and the data directory "
                   "has EXPORTD_MIN_FREE_BYTES free; the jobs waiting for a worker; 503 when degraded, saying why.",
        "tags": ["Operations"],
        "responses": {"200": {"description": "Healthy: status ok."},
                      "503": {"description": "Degraded: status degraded, and `reasons` (Redis missing or refusing "
                                             "writes, fewer replicas than EXPORTD_REDIS_REPLICAS, no worker, the data "
                                             "directory's disk below its floor)."}},
    }),
    Route("GET", "/metrics", health.metrics, "metrics", {
        "summary": "Prometheus metrics: exports created/ready/failed/expired/rejected by format (each export once per "
                   "outcome), jobs waiting, records written, "
                   "export duration and size histograms.",
        "tags": ["Operations"],
        "responses": {"200": {"description": "Prometheus text format.", "content": {"text/plain": {"schema": {"type": "string"}}}},
                      "503": {"$ref": "#/components/responses/Error"}},
    }),
    Route("GET", "/api/openapi.json", openapi.document, "openapi", {
        "summary": "This document.", "tags": ["Operations"],
        "responses": {"200": {"description": "OpenAPI 3.1 document."}},
    }),
    Route("GET", "/api/v1/me", me.me, "me", {
        "summary": "Who the token belongs to: name, whether an administrator, and the secret that signs the "
                   "webhooks of their exports (X-Exportd-Signature: sha256=<hex HMAC-SHA256 of the body>).",
        "tags": ["OSDI exports"], "security": TOKEN,
        "responses": {"200": {"description": "The caller.", "content": {"application/json": {"schema": ME}}}, "401": ERR},
    }),
    Route("POST", "/api/v1/me/webhook_secret", me.rotate_webhook_secret, "me-webhook-secret", {
        "summary": "A new webhook secret for the caller; the old one signs nothing from now on.",
        "tags": ["OSDI exports"], "security": TOKEN,
        "responses": {"200": {"description": "The caller, with the new secret.",
                              "content": {"application/json": {"schema": ME}}}, "401": ERR},
    }),
    Route("GET", "/docs/v1/{rel}", relations.relation, "osdi-relation", {
        "summary": "What the HAL curie's link relation names (osdi:exports, osdi:export, osdi:resource): a page, or "
                   "with Accept: application/json the OpenAPI document of the operations behind it.",
        "tags": ["OSDI exports"],
        "parameters": [{"name": "rel", "in": "path", "required": True,
                        "schema": {"type": "string", "enum": list(relations.RELATIONS)}}],
        "responses": {"200": {"description": "HTML, or the OpenAPI document (JSON).",
                              "content": {"text/html": {"schema": {"type": "string"}},
                                          "application/json": {"schema": {"type": "object"}}}},
                      "404": ERR},
    }),
    Route("GET", "/", page.index, "web-page", {
        "summary": "The web page: catalog, export menu, my exports, the approval queue; it uses this API and nothing else.",
        "tags": ["Web page"],
        "responses": {"200": {"description": "HTML.", "content": {"text/html": {"schema": {"type": "string"}}}},
                      "304": {"description": "Not modified (ETag)."}},
    }),
    Route("GET", "/static/{file_name}", page.static, "web-static", {
        "summary": "The page's script and style sheet; with ?v=<content hash> cacheable for a year.",
        "tags": ["Web page"],
        "parameters": [{"name": "file_name", "in": "path", "required": True, "schema": {"type": "string", "enum": sorted(page.STATIC)}},
                       {"name": "v", "in": "query", "required": False, "schema": {"type": "string"}}],
        "responses": {"200": {"description": "The file."}, "304": {"description": "Not modified (ETag)."}, "404": ERR},
    }),
]


def _explore_routes() -> list[Route]:
    routes = []
    for method, suffix, handler, name, operation in explore_routes.ENDPOINTS:
        for i, path in enumerate(explore_routes.paths(suffix)):
            routes.append(Route(method, path, handler, name if i == 0 else f"{name}-v{i}",
                                {**operation, "tags": explore_routes.TAG, "security": explore_routes.KEY,
                                 "responses": {**operation["responses"], "401": ERR}}))  # a wrong key
    return routes


ROUTES += _explore_routes()
ROUTES.append(Route("GET", "/explore/dataset/{dataset_id}/download/", explore_exports.portal_download, "portal-download", {
    "summary": "The portal's download URL: ?format=csv&csv_separator=;&use_labels_for_header=true&where=…",
    "tags": explore_routes.TAG, "security": explore_routes.KEY,
    "parameters": [explore_routes.DATASET_ID, explore_routes.q("format", "The format.")],
    "responses": {"200": {"description": "The file, streamed."}, "400": ERR, "401": ERR, "404": ERR},
}))

ROUTES += [Route(*route) for route in management_routes.ROUTES]


# Other handlers of stored files (api/fileresponse.py) answer HEAD as they answer GET (and the
# OpenAPI document says so); the download link's HEAD is a route of its own above.
HEAD_TOO = {attached.attachment, attached.file, files.download, alternative_exports.download}


def add_routes(app: web.Application) -> None:
    for route in ROUTES:
        app.router.add_route(route.method, route.path, route.handler, name=route.name)
        if route.method == "GET" and route.handler in HEAD_TOO:
            app.router.add_route("HEAD", route.path, route.handler, name=f"{route.name}-head")
