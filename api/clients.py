"""Who a request without an account comes from: its IP address — the peer's, or, when the peer
is one of EXPORTD_TRUSTED_PROXIES, the address that proxy says it forwarded for, X-Forwarded-For
read from the right past every trusted proxy (a client can write anything at its left end)."""
from __future__ import annotations

import ipaddress
from functools import lru_cache

from aiohttp import web

from api.keys import SETTINGS

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def client_of(request: web.Request) -> str:
    """The IP address the request comes from, as far as the trusted proxies tell."""
    return client_address(request.remote, request.headers.get("X-Forwarded-For"), request.app[SETTINGS].trusted_proxies)


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
