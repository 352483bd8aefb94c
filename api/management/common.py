"""What every management handler needs: the administrator check (HTTP Basic, `Authorization:
Apikey <key>` or OSDI-API-Token), the repositories over the app's Redis client, JSON answers."""
from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson
from aiohttp import web

from api.auth import presented_token
from api.bodies import json_object
from api.keys import STATE, STORAGE, USERS
from domain.alternative_exports import AlternativeExports
from domain.datasets import Dataset
from domain.errors import Forbidden, Invalid, Unauthorized
from domain.files import FileRepo
from domain.jobs import JobRepo
from domain.managed_datasets import ManagedDatasets
from domain.realtime import Realtime
from domain.users import User

CHALLENGE = {"WWW-Authenticate": 'Basic realm="exportd management API", charset="UTF-8"'}


def _challenge(message: str) -> Unauthorized:
    error = Unauthorized(message)
    error.headers = CHALLENGE  # type: ignore[attr-defined]
    return error


async def administrator(request: web.Request) -> User:
    """The administrator making the request: 401 without valid credentials, 403 for others."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    users = request.app[USERS]
    try:
        if scheme.lower() == "basic":
            try:
                name, sep, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise Unauthorized("malformed HTTP Basic credentials") from None
            if not sep or not name:
                raise Unauthorized("HTTP Basic credentials must be user:password")
            user = await users.authenticate_password(name, password)
        else:
            token = presented_token(request)
            if not token:
                raise Unauthorized("sign in with HTTP Basic (-u user:password), `Authorization: Apikey <key>` or OSDI-API-Token")
            user = await users.authenticate(token)
    except Unauthorized as exc:
        raise _challenge(exc.message) from None
    if not user.admin:
        raise Forbidden("the management API is for administrators")
    return user


def datasets(request: web.Request) -> ManagedDatasets:
    return ManagedDatasets(request.app[STATE])


def jobs(request: web.Request) -> JobRepo:
    return JobRepo(request.app[STATE])


def files(request: web.Request) -> FileRepo:
    return FileRepo(request.app[STATE], request.app[STORAGE])


def alternative_exports(request: web.Request) -> AlternativeExports:
    return AlternativeExports(request.app[STATE])


def realtime(request: web.Request) -> Realtime:
    return Realtime(request.app[STATE])


async def dataset_in_path(request: web.Request) -> Dataset:
    return await datasets(request).by_uid(request.match_info["dataset_uid"])


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


async def optional_json(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object, or {} when there is none."""
    return await json_object(request, required=False)


def only_keys(body: dict[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise Invalid(f"unknown field(s) {', '.join(unknown)}; expected {', '.join(allowed)}")
