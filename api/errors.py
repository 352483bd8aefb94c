"""One middleware turns every failure into a JSON error with the right status:
{"error_code", "message", "error"} (`error` repeats the message for OpenDataSoft's older
clients). A request never answers 500 for bad input; a real bug answers 500 without a trace."""
from __future__ import annotations

import logging
from typing import Any

import orjson
import redis.exceptions
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from domain.errors import DomainError, InsufficientStorage
from domain.storage import disk_full
from formats import FormatNotApplicable, OptionError, UnknownFormat

log = logging.getLogger("exportd.api")

CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 409: "conflict", 410: "gone", 413: "request_too_large",
    415: "unsupported_media_type", 416: "range_not_satisfiable", 429: "too_many_requests",
    503: "unavailable", 507: "insufficient_storage",
}


def json_error(status: int, error_code: str, message: str, headers: Any = None, **extra: Any) -> web.Response:
    body = {"error_code": error_code, "message": message, "error": message, **extra}
    response = web.Response(status=status, body=orjson.dumps(body), content_type="application/json", headers=headers)
    return response


def known_error(exc: BaseException) -> tuple[int, str, str, dict[str, str] | None, dict[str, Any]] | None:
    """(status, error_code, message, headers, extra) of an error that bad input raises, or None
    for any other exception. Also read in the query processes (api/isolation), whose errors come
    back to the web process as these fields."""
    if isinstance(exc, DomainError):
        return exc.status, exc.error_code, exc.message, getattr(exc, "headers", None), exc.extra
    if isinstance(exc, UnknownFormat):
        return 400, "unknown_export_type", exc.message, None, {}
    if isinstance(exc, (OptionError, FormatNotApplicable)):
        code = "invalid_option" if isinstance(exc, OptionError) else "format_not_applicable"
        return 400, code, str(exc), None, {}
    if disk_full(exc):  # whatever was being written was removed with its partial file
        error = InsufficientStorage("the service's disk is full, and nothing was kept; try again later, "
                                    "or ask an administrator to free space")
        return error.status, error.error_code, error.message, None, {}
    return None


@web.middleware
async def error_middleware(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except (DomainError, UnknownFormat, OptionError, FormatNotApplicable) as exc:
        status, code, message, headers, extra = known_error(exc)  # type: ignore[misc]
        return json_error(status, code, message, headers=headers, **extra)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after", "www-authenticate")}
        message = exc.reason if exc.text is None or exc.text.startswith(f"{exc.status}:") else exc.text
        return json_error(exc.status, CODES.get(exc.status, "error"), message, headers=headers)
    except HttpProcessingError as exc:  # a malformed body part (multipart headers), found while the handler reads it
        status = exc.code if 400 <= exc.code < 500 else 400
        return json_error(status, CODES.get(status, "bad_request"), f"malformed request: {exc.message}")
    # WatchError: a connection lost under a WATCH (arq's enqueue), as redis-py reports it when retrying
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, redis.exceptions.WatchError,
            ConnectionRefusedError):
        return json_error(503, "redis_unavailable", "the export service's state store is unavailable; try again shortly",
                          headers={"Retry-After": "5"})
    except (redis.exceptions.OutOfMemoryError, redis.exceptions.ReadOnlyError) as exc:  # maxmemory reached; a replica
        log.error("Redis refused a write on %s %s: %s", request.method, request.path, exc)
        return json_error(503, "redis_unavailable", "the export service's state store cannot take writes now "
                          "(it is full or read-only); try again shortly", headers={"Retry-After": "30"})
    except Exception as exc:
        fields = known_error(exc)
        if fields is None:
            return _internal_error(request)
        log.error("%s on %s %s: %s", fields[1], request.method, request.path, exc)
        status, code, message, headers, extra = fields
        return json_error(status, code, message, headers=headers, **extra)


def _internal_error(request: web.Request) -> web.Response:
    log.exception("unhandled error on %s %s", request.method, request.path)
    return json_error(500, "internal_error", "an internal error occurred; it has been logged")
