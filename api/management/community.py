"""Reuses and feedback, for administrators: add and list a dataset's reuses (the Explore API
lists and reads them), and read the feedback its users sent."""
from __future__ import annotations

from aiohttp import web

from api.bodies import json_object
from api.keys import STATE
from api.management.common import administrator, dataset_in_path, json_response
from domain.reuses import Feedback, Reuses


async def add_reuse(request: web.Request) -> web.Response:
    await administrator(request)
    dataset = await dataset_in_path(request)
    return json_response(await Reuses(request.app[STATE]).add(dataset.dataset_uid, await json_object(request)), status=201)


async def list_reuses(request: web.Request) -> web.Response:
    await administrator(request)
    dataset = await dataset_in_path(request)
    found = await Reuses(request.app[STATE]).list(dataset.dataset_uid)
    return json_response({"total_count": len(found), "results": found})


async def list_feedback(request: web.Request) -> web.Response:
    await administrator(request)
    dataset = await dataset_in_path(request)
    entries = await Feedback(request.app[STATE]).list(dataset.dataset_uid)
    return json_response({"total_count": len(entries), "results": entries})
