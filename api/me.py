"""GET /api/v1/me: who the presented token belongs to — {name, admin} — so a client (the web
page at `/`) can greet its user and show administrators the approval queue through the same
public API as everyone."""
from __future__ import annotations

from aiohttp import web

from api.auth import current_user
from api.users import user_view


async def me(request: web.Request) -> web.Response:
    return web.json_response(user_view(await current_user(request)), headers={"Cache-Control": "private, no-store"})
