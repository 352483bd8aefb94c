"""What is attached to a dataset, through the Explore API: attachments (the files an
administrator attached with the management API's alternative exports), files of its resources,
reuses, and feedback from its users (PUT, for the publisher)."""
from __future__ import annotations

from aiohttp import web

from api.bodies import json_object
from api.explore.params import explorer, visible_dataset
from api.explore.views import catalog_base, json_response, link
from api.fileresponse import stored_file
from api.keys import STATE, STORAGE
from domain.alternative_exports import AlternativeExports
from domain.errors import NotFound
from domain.files import FileRepo
from domain.managed_datasets import ManagedDatasets
from domain.reuses import Feedback, Reuses


async def attachments(request: web.Request) -> web.Response:
    dataset = await visible_dataset(request)
    href = f"{catalog_base(request)}/datasets/{dataset.dataset_id}/attachments"
    attached = await AlternativeExports(request.app[STATE]).list(dataset.dataset_uid)
    return json_response({
        "links": [link("self", href)],
        "attachments": [{"id": a.export_uid, "title": a.filename, "mimetype": a.mimetype, "created": a.created,
                         "url": f"{href}/{a.export_uid}"} for a in attached],
    })


async def attachment(request: web.Request) -> web.StreamResponse:
    dataset = await visible_dataset(request)
    attached = await AlternativeExports(request.app[STATE]).get(dataset.dataset_uid, request.match_info["attachment_id"])
    stored = await FileRepo(request.app[STATE], request.app[STORAGE]).get(attached.file_id)
    return await stored_file(request, stored.key, stored.filename, stored.mimetype)


async def file(request: web.Request) -> web.StreamResponse:
    """A file of this dataset: one of its resources' or attachments' files, and no other."""
    dataset = await visible_dataset(request)
    file_id = request.match_info["file_id"]
    owned = {r.file_id for r in await ManagedDatasets(request.app[STATE]).resources(dataset.dataset_uid)}
    owned |= {a.file_id for a in await AlternativeExports(request.app[STATE]).list(dataset.dataset_uid)}
    if file_id not in owned:
        raise NotFound(f"dataset {dataset.dataset_id!r} has no file {file_id!r}")
    stored = await FileRepo(request.app[STATE], request.app[STORAGE]).get(file_id)
    return await stored_file(request, stored.key, stored.filename, stored.mimetype)


async def reuses(request: web.Request) -> web.Response:
    dataset = await visible_dataset(request)
    found = await Reuses(request.app[STATE]).list(dataset.dataset_uid)
    return json_response({"total_count": len(found), "results": found})


async def reuse(request: web.Request) -> web.Response:
    dataset = await visible_dataset(request)
    return json_response(await Reuses(request.app[STATE]).get(dataset.dataset_uid, request.match_info["reuse_id"]))


async def feedback(request: web.Request) -> web.Response:
    """PUT a feedback entry (title, message, contact) for the dataset's publisher."""
    dataset = await visible_dataset(request)
    user = await explorer(request)
    entry = await Feedback(request.app[STATE]).add(dataset.dataset_uid, await json_object(request),
                                                   user.name if user else None)
    return json_response(entry, status=201)
