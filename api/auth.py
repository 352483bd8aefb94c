"""Who is asking: the OSDI-API-Token header (or `Authorization: Apikey <token>`)."""
from __future__ import annotations

from aiohttp import web

from api.keys import USERS
from domain.errors import Forbidden
from domain.users import User

HEADER = "OSDI-API-Token"


def presented_token(request: web.Request) -> str | None:
    token = request.headers.get(HEADER)
    if token:
        return token.strip()
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "apikey" and value.strip():
        return value.strip()
    return None


async def current_user(request: web.Request) -> User:
    return await request.app[USERS].authenticate(presented_token(request))


async def administrator(request: web.Request) -> User:
    user = await current_user(request)
    if not user.admin:
        raise Forbidden("only an administrator may do this")
    return user
