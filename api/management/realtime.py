"""Realtime push (see domain.realtime for what realtime means here): an administrator gets a
dataset's push key; whoever holds it pushes records, which are kept as recovery data."""
from __future__ import annotations

import orjson
from aiohttp import web

from api.management.common import administrator, dataset_in_path, datasets, json_response, realtime
from domain.errors import Invalid
from domain.realtime import APPLIED

PUSH_KEY_HASH = "push_key_hash"  # Dataset.extra


async def new_push_key(request: web.Request) -> web.Response:
    user = await administrator(request)
    dataset = await dataset_in_path(request)
    key, digest = await realtime(request).new_push_key(dataset.dataset_uid, dataset.extra.get(PUSH_KEY_HASH))
    await datasets(request).save_data(dataset.dataset_uid, extra={PUSH_KEY_HASH: digest})
    await datasets(request).record_change(dataset.dataset_uid, user.name, "push_key_created")
    push_url = f"{request.scheme}://{request.host}/api/push/1.0/{dataset.dataset_uid}/push?pushkey={key}"
    return json_response({"push_key": key, "push_url": push_url}, status=201)


async def recovery_data(request: web.Request) -> web.Response:
    await administrator(request)
    dataset = await dataset_in_path(request)
    return json_response({"records": await realtime(request).count(dataset.dataset_uid),
                          "applied_through": int(dataset.extra.get(APPLIED, 0))})


async def push(request: web.Request) -> web.Response:
    repo = realtime(request)
    uid = await repo.dataset_of(request.query.get("pushkey") or request.headers.get("Pushkey"))
    if uid != request.match_info["dataset_uid"]:
        raise Invalid("this pushkey belongs to another dataset")
    raw = await request.read()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Invalid(f"the request body is not valid JSON: {exc}") from None
    return json_response({"status": "OK", "records": await repo.push(uid, body)})
