"""Users and their API tokens over HTTP, for administrators: list, add (with a first token),
a fresh token, and the password HTTP Basic takes on the management API. The `exportd` command line's `users` commands use these, so an operator
needs the service's URL and an administrator token, not access to its Redis. A token is shown
once, in the answer that creates it; only its hash is kept."""
from __future__ import annotations

from aiohttp import web

from api.auth import administrator
from api.bodies import json_object, string_field
from api.keys import USERS
from domain.errors import Invalid
from domain.users import User


def user_view(user: User) -> dict[str, object]:
    return {"name": user.name, "admin": user.admin}


async def collection(request: web.Request) -> web.Response:
    await administrator(request)
    return web.json_response({"users": [user_view(u) for u in await request.app[USERS].list()]})


async def create(request: web.Request) -> web.Response:
    await administrator(request)
    body = await json_object(request)
    admin = body.get("admin", False)
    if not isinstance(admin, bool):
        raise Invalid("the field 'admin' must be true or false")
    repo = request.app[USERS]
    user = await repo.add(string_field(body, "name"), admin=admin)
    return web.json_response({**user_view(user), "token": await repo.new_token(user.name)}, status=201)


async def new_token(request: web.Request) -> web.Response:
    await administrator(request)
    name = request.match_info["name"]
    return web.json_response({"name": name, "token": await request.app[USERS].new_token(name)}, status=201)


async def set_password(request: web.Request) -> web.Response:
    await administrator(request)
    name = request.match_info["name"]
    await request.app[USERS].set_password(name, string_field(await json_object(request), "password"))
    return web.json_response({"name": name, "notice": "The password was set."})
