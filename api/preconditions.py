"""Conditional requests on stored files, evaluated in RFC 9110's order (section 13.2.2):
If-Match, else If-Unmodified-Since, may answer 412; then If-None-Match, else If-Modified-Since,
may answer 304. If-Range is the range's business (api/ranges.py)."""
from __future__ import annotations

from datetime import datetime

from aiohttp import web


def refused(request: web.Request, etag: str, modified: datetime) -> int | None:
    """412 or 304 when a precondition says so, else None, for a file whose strong ETag is
    `etag` (unquoted), last modified at `modified`. If-Match compares strongly, If-None-Match
    weakly, as RFC 9110 asks; dates compare to the second, as HTTP-dates carry no more."""
    if (tags := request.if_match) is not None:
        if not any(t.value == "*" or (not t.is_weak and t.value == etag) for t in tags):
            return 412
    elif (since := request.if_unmodified_since) is not None and int(modified.timestamp()) > since.timestamp():
        return 412
    if (tags := request.if_none_match) is not None:
        if any(t.value in ("*", etag) for t in tags):
            return 304
    elif (since := request.if_modified_since) is not None and int(modified.timestamp()) <= since.timestamp():
        return 304
    return None
