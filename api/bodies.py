"""Request input: JSON bodies and query-string integers, validated into 400s that say what
is wrong."""
from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from domain.errors import Invalid


async def json_object(request: web.Request, required: bool = True) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 naming the problem; {} for no body when
    it is not required."""
    raw = await request.read()
    if not raw.strip():
        if not required:
            return {}
        raise Invalid("the request needs a JSON body")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Invalid(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise Invalid("the request body must be a JSON object")
    return body


MAX_QUERY_INT = 1_000_000_000  # no page, offset or limit is larger; keeps Redis ranges and JSON in 64 bits


def query_int(request: web.Request, name: str, default: int, lowest: int, highest: int = MAX_QUERY_INT,
              error_code: str | None = None) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Invalid(f"query parameter {name!r} must be an integer, not {raw!r}", error_code=error_code) from None
    if not lowest <= value <= highest:
        bounds = f"between {lowest} and {highest}"
        raise Invalid(f"query parameter {name!r} must be {bounds}, not {value}", error_code=error_code)
    return value


MAX_STRING = 2000  # characters of a name, a detail, a title: what a person writes, not a payload


def string_field(body: dict[str, Any], name: str, required: bool = True, default: str = "",
                 max_length: int = MAX_STRING) -> str:
    value = body.get(name)
    if value is None or value == "":
        if required:
            raise Invalid(f"the field {name!r} is required", field=name)
        return default
    if not isinstance(value, str):
        raise Invalid(f"the field {name!r} must be a string", field=name)
    if len(value) > max_length:
        raise Invalid(f"the field {name!r} holds {len(value)} characters; at most {max_length}", field=name)
    return value


def int_field(body: dict[str, Any], name: str, lowest: int, highest: int) -> int:
    """A required JSON integer (not a boolean, a float or a string of digits) within bounds."""
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise Invalid(f"the field {name!r} must be an integer from {lowest} to {highest}", field=name)
    if not lowest <= value <= highest:
        raise Invalid(f"the field {name!r} must be from {lowest} to {highest}, not {value}", field=name)
    return value
