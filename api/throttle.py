"""Per-client budgets for the routes anyone may call without an account: the Explore API's
requests (EXPORTD_EXPLORE_RATE_LIMIT a minute) and, apart, its streamed exports
(EXPORTD_STREAM_RATE_LIMIT a minute), each past its budget a 429 with Retry-After.

A client is its API key when it sends one (so that a portal's own tools, or a visitor behind
a shared NAT with a key, are counted apart; a key that does not exist is answered 401 by the
route anyway), else its IP address (api/clients.py). The administrator's token is not
counted."""
from __future__ import annotations

import hashlib
import hmac

from aiohttp import web

from api.auth import presented_token
from api.clients import client_of
from api.keys import SETTINGS, STATE
from domain import ratelimit

EXPLORE_PREFIXES = ("/api/v2/catalog", "/api/explore/", "/explore/dataset/")
def _streamed(path: str) -> bool:
    return "/download" in path or ("/exports/" in path.rstrip("/") and not path.rstrip("/").endswith("/exports"))


@web.middleware
async def throttle_middleware(request: web.Request, handler):
    path = request.path
    if request.method in ("GET", "HEAD", "POST") and path.startswith(EXPLORE_PREFIXES):
        settings = request.app[SETTINGS]
        token = presented_token(request) or request.query.get("apikey")
        if token and hmac.compare_digest(token, settings.admin_token):
            return await handler(request)
        if token:
            client = "key:" + hashlib.sha256(token.encode()).hexdigest()[:24]
        else:
            client = "ip:" + client_of(request)
        state = request.app[STATE]
        if _streamed(path):
            await ratelimit.check(state, f"stream:{client}", settings.stream_rate_limit, "streamed exports may be asked for")
        await ratelimit.check(state, f"explore:{client}", settings.explore_rate_limit, "Explore API requests may be made")
    return await handler(request)
