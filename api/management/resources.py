"""A dataset's resources: uploaded files named by their odsfile:// url, with their type (csv,
geojson, parquet, xlsx; sniffed when absent) and parameters (CSV delimiter and encoding, XLSX
sheet, header row, lat/lon fields, and `fields`: type overrides per field)."""
from __future__ import annotations

import secrets

from aiohttp import web

from api.management.common import administrator, dataset_in_path, datasets, files, json_response, only_keys, optional_json
from domain.errors import Invalid
from domain.managed_datasets import Resource, validated_resource_params
from domain.timeutil import iso, now


def resource_view(resource: Resource) -> dict:
    return {"resource_uid": resource.resource_uid, "url": resource.url, "title": resource.title,
            "type": resource.type, "params": resource.params, "created": resource.created}


async def create(request: web.Request) -> web.Response:
    user = await administrator(request)
    dataset = await dataset_in_path(request)
    body = await optional_json(request)
    only_keys(body, ("url", "type", "params", "title"))
    stored = await files(request).resolve(body.get("url"))
    type_, params = validated_resource_params(body.get("type"), body.get("params"))
    title = body.get("title") or stored.filename
    if not isinstance(title, str):
        raise Invalid("'title' must be a string")
    resource = Resource("re_" + secrets.token_hex(6), stored.url, stored.file_id, title, type_, params, iso(now()) or "")
    repo = datasets(request)
    await repo.add_resource(dataset.dataset_uid, resource)
    await repo.record_change(dataset.dataset_uid, user.name, "resource_added", {"resource_uid": resource.resource_uid, "url": stored.url})
    return json_response(resource_view(resource), status=201)


async def collection(request: web.Request) -> web.Response:
    await administrator(request)
    dataset = await dataset_in_path(request)
    return json_response([resource_view(r) for r in await datasets(request).resources(dataset.dataset_uid)])


async def read(request: web.Request) -> web.Response:
    await administrator(request)
    dataset = await dataset_in_path(request)
    return json_response(resource_view(await datasets(request).resource(dataset.dataset_uid, request.match_info["resource_uid"])))


async def delete(request: web.Request) -> web.Response:
    user = await administrator(request)
    dataset = await dataset_in_path(request)
    repo = datasets(request)
    await repo.delete_resource(dataset.dataset_uid, request.match_info["resource_uid"])
    await repo.record_change(dataset.dataset_uid, user.name, "resource_deleted", {"resource_uid": request.match_info["resource_uid"]})
    return json_response({"resource_uid": request.match_info["resource_uid"], "deleted": True})
