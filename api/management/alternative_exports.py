"""Alternative exports of a dataset: list, create ({"url": "odsfile://…"}), retrieve, delete,
download (the file with its name and type, Range supported)."""
from __future__ import annotations

from aiohttp import web

from api.management.common import administrator, alternative_exports, dataset_in_path, files, json_response, only_keys, optional_json
from api.management.files import file_response
from domain.errors import Invalid


async def collection(request: web.Request) -> web.Response:
    await administrator(request)
    dataset = await dataset_in_path(request)
    return json_response([e.view() for e in await alternative_exports(request).list(dataset.dataset_uid)])


async def create(request: web.Request) -> web.Response:
    await administrator(request)
    dataset = await dataset_in_path(request)
    body = await optional_json(request)
    only_keys(body, ("url",))
    if "url" not in body:
        raise Invalid("the field 'url' is required: odsfile://NAME of an uploaded file")
    stored = await files(request).resolve(body["url"])
    export = await alternative_exports(request).create(dataset.dataset_uid, body["url"], stored)
    return json_response(export.view(), status=201)


async def read(request: web.Request) -> web.Response:
    await administrator(request)
    dataset = await dataset_in_path(request)
    return json_response((await alternative_exports(request).get(dataset.dataset_uid, request.match_info["export_uid"])).view())


async def delete(request: web.Request) -> web.Response:
    await administrator(request)
    dataset = await dataset_in_path(request)
    await alternative_exports(request).delete(dataset.dataset_uid, request.match_info["export_uid"])
    return json_response({"export_uid": request.match_info["export_uid"], "deleted": True})


async def download(request: web.Request) -> web.StreamResponse:
    await administrator(request)
    dataset = await dataset_in_path(request)
    export = await alternative_exports(request).get(dataset.dataset_uid, request.match_info["export_uid"])
    stored = await files(request).get(export.file_id)
    return await file_response(request, stored.key, stored.filename, stored.mimetype)
