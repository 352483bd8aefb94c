"""Who is asking: the OSDI-API-Token header, `Authorization: Apikey <token>`, or — for the web
page at `/` — the token in the `exportd_token` cookie.

A cookie travels with every request the browser makes to this host, whichever site started it,
so a state-changing request authenticated by the cookie alone must come from this origin (its
Origin header names it) or carry the OSDI-API-Token header itself (which no other site can
make a browser send): a cookie alone cannot be used cross-site (CSRF)."""
from __future__ import annotations

from urllib.parse import unquote

from aiohttp import web

from api.clients import client_of
from api.hal import origin
from api.keys import SETTINGS, USERS
from domain.errors import Forbidden
from domain.users import User, anonymous_visitor

HEADER = "OSDI-API-Token"
COOKIE = "exportd_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def presented_token(request: web.Request) -> str | None:
    token = request.headers.get(HEADER)
    if token:
        return token.strip()
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "apikey" and value.strip():
        return value.strip()
    cookie = unquote(request.cookies.get(COOKIE, "")).strip()
    if not cookie:
        return None
    if request.method not in SAFE_METHODS and request.headers.get("Origin") != origin(request):
        raise Forbidden(f"a {request.method} authenticated by the {COOKIE} cookie must come from this site "
                        f"(Origin header) or send the {HEADER} header", error_code="cross_site_request")
    return cookie


async def current_user(request: web.Request) -> User:
    return await request.app[USERS].authenticate(presented_token(request))


async def administrator(request: web.Request) -> User:
    user = await current_user(request)
    if not user.admin:
        raise Forbidden("only an administrator may do this")
    return user


async def visitor(request: web.Request) -> User:
    """The user of the token presented; without one, when EXPORTD_ANONYMOUS_EXPORTS allows it,
    the anonymous visitor at this address (else 401, as current_user)."""
    settings = request.app[SETTINGS]
    if presented_token(request) is None and settings.anonymous_exports:
        return anonymous_visitor(client_of(request), settings.secret_key)
    return await current_user(request)
