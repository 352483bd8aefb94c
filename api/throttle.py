"""Per-client budgets for the routes anyone may call without an account: the Explore API's
requests (EXPORTD_EXPLORE_RATE_LIMIT a minute) and, apart, its streamed exports
(EXPORTD_STREAM_RATE_LIMIT a minute), each past its budget a 429 with Retry-After.

A client is its API key when it sends one (so that a portal's own tools, or a visitor behind
a shared NAT with a key, are counted apart; a key that does not exist is answered 401 by the
route anyway), else its IP address: the peer's, or, when the peer is one of
EXPORTD_TRUSTED_PROXIES, the address that proxy says it forwarded for — X-Forwarded-For read
from the right, past every trusted proxy, as a client can write anything at its left end.
The administrator's token is not counted."""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
from functools import lru_cache

from aiohttp import web

from api.auth import presented_token
from api.keys import SETTINGS, STATE
from domain import ratelimit

EXPLORE_PREFIXES = ("/api/v2/catalog", "/api/explore/", "/explore/dataset/")
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _trusted(proxies: tuple[str, ...]) -> tuple[IpNetwork, ...]:
    return tuple(ipaddress.ip_network(p, strict=False) for p in proxies)


def client_address(peer: str | None, forwarded_for: str | None, proxies: tuple[str, ...]) -> str:
    """The client's IP address: `peer`, or while that is a trusted proxy, the next address to
    the left in X-Forwarded-For. An entry that is no address ends the walk at the proxy."""
    trusted = _trusted(proxies)
    address = peer or "unknown"
    hops = [h.strip() for h in (forwarded_for or "").split(",") if h.strip()] if trusted else []
    while hops and _within(address, trusted):
        hop = hops.pop()
        try:
            address = str(ipaddress.ip_address(hop))
        except ValueError:
            break
    return address


def _within(address: str, networks: tuple[IpNetwork, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


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
            client = "ip:" + client_address(request.remote, request.headers.get("X-Forwarded-For"), settings.trusted_proxies)
        state = request.app[STATE]
        if _streamed(path):
            await ratelimit.check(state, f"stream:{client}", settings.stream_rate_limit, "streamed exports may be asked for")
        await ratelimit.check(state, f"explore:{client}", settings.explore_rate_limit, "Explore API requests may be made")
    return await handler(request)
