"""Datasets: create, list, retrieve (status and changes expandable), update, delete; their
processing jobs (publish, unpublish, abort_processing, save_version, recover_realtime_records,
scratch_recovery_data), each answering {"job_id"}; their saved versions."""
from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from api.bodies import query_int
from api.keys import QUEUE, SETTINGS, STORAGE
from api.management.common import administrator, dataset_in_path, datasets, jobs, json_response, only_keys, optional_json
from domain import jobs as jb
from domain.datasets import Dataset
from domain.errors import Invalid
from domain import metadata as templates

EXPANDABLE = ("status", "changes")


def dataset_view(dataset: Dataset, status: dict[str, str] | None = None, changes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "dataset_id": dataset.dataset_id,
        "dataset_uid": dataset.dataset_uid,
        "metadata": templates.template_form(dataset),
        "published": dataset.published,
        "records_count": dataset.records_count,
        "fields": [f.as_dict() for f in dataset.fields],
        "version": dataset.version or None,
        "created": dataset.created,
        "modified": dataset.modified,
    }
    if status is not None:
        body["status"] = {"name": status["status"], "since": status["since"] or None,
                          "job_id": status["job_id"] or None, "message": status["message"] or None}
    if changes is not None:
        body["changes"] = changes
    return body


def _expand(request: web.Request) -> set[str]:
    wanted = {part.strip() for value in request.query.getall("expand", []) for part in value.split(",") if part.strip()}
    unknown = wanted - set(EXPANDABLE)
    if unknown:
        raise Invalid(f"cannot expand {', '.join(sorted(unknown))}; expandable: {', '.join(EXPANDABLE)}")
    return wanted


async def _view(request: web.Request, dataset: Dataset, expand: set[str]) -> dict[str, Any]:
    status = await jobs(request).dataset_status(dataset.dataset_uid) if "status" in expand else None
    changes = await datasets(request).changes(dataset.dataset_uid) if "changes" in expand else None
    return dataset_view(dataset, status, changes)


async def create(request: web.Request) -> web.Response:
    user = await administrator(request)
    body = await optional_json(request)
    only_keys(body, ("dataset_id", "metadata"))
    metadata = templates.parse(body.get("metadata") or {})
    dataset = await datasets(request).create(body.get("dataset_id"), metadata, user.name)
    return json_response(await _view(request, dataset, {"status"}), status=201)


async def collection(request: web.Request) -> web.Response:
    await administrator(request)
    limit = query_int(request, "limit", 20, 0, 100)
    offset = query_int(request, "offset", 0, 0)
    expand = _expand(request)
    total, page = await datasets(request).page(limit, offset)
    return json_response({"total_count": total, "limit": limit, "offset": offset,
                          "results": [await _view(request, d, expand) for d in page]})


async def read(request: web.Request) -> web.Response:
    await administrator(request)
    return json_response(await _view(request, await dataset_in_path(request), _expand(request)))


async def update(request: web.Request) -> web.Response:
    user = await administrator(request)
    body = await optional_json(request)
    only_keys(body, ("dataset_id", "metadata"))
    dataset = await dataset_in_path(request)
    metadata = templates.parse(body["metadata"]) if body.get("metadata") is not None else None
    new_id = body.get("dataset_id")
    if new_id is not None and new_id != dataset.dataset_id:
        await jobs(request).ensure_free(dataset.dataset_uid, "change the dataset_id")
    updated = await datasets(request).update(dataset, user.name, new_id, metadata)
    return json_response(await _view(request, updated, {"status"}))


async def delete(request: web.Request) -> web.Response:
    await administrator(request)
    dataset = await dataset_in_path(request)
    await jobs(request).ensure_free(dataset.dataset_uid, "delete the dataset")
    await datasets(request).delete(dataset)
    # its versions (an export reading one keeps its open file)
    await asyncio.to_thread(request.app[STORAGE].delete, f"datasets/{dataset.dataset_uid}")
    return json_response({"dataset_uid": dataset.dataset_uid, "deleted": True})


# -- processing ------------------------------------------------------------------------------


async def _start(request: web.Request, kind: str, check=None, **params: Any) -> web.Response:
    """Queue a job of this kind for the dataset in the path (after `check(dataset)`)."""
    user = await administrator(request)
    dataset = await dataset_in_path(request)
    if check is not None:
        await check(request, dataset)
    job = await jobs(request).create(kind, dataset.dataset_uid, user=user.name, **params)
    await jb.enqueue(request.app[QUEUE], request.app[SETTINGS].queue_name, job.job_id)
    return json_response({"job_id": job.job_id})


async def _has_resources(request: web.Request, dataset: Dataset) -> None:
    if not await datasets(request).resources(dataset.dataset_uid):
        raise Invalid("the dataset has no resources to publish; add one at …/resources/ first", error_code="no_resources")


async def _has_data(request: web.Request, dataset: Dataset) -> None:
    if not dataset.data_key:
        raise Invalid("the dataset has no data yet; publish it first", error_code="no_data")


async def publish(request: web.Request) -> web.Response:
    return await _start(request, jb.PUBLISH, _has_resources)


async def unpublish(request: web.Request) -> web.Response:
    return await _start(request, jb.UNPUBLISH)


async def save_version(request: web.Request) -> web.Response:
    await administrator(request)  # before reading anything
    body = await optional_json(request)
    only_keys(body, ("name",))
    name = body.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip() or len(name) > 200):
        raise Invalid("'name' must be a non-empty string of at most 200 characters")
    return await _start(request, jb.SAVE_VERSION, _has_data, name=name)


async def recover_realtime_records(request: web.Request) -> web.Response:
    return await _start(request, jb.RECOVER, _has_data)


async def scratch_recovery_data(request: web.Request) -> web.Response:
    return await _start(request, jb.SCRATCH)


async def abort_processing(request: web.Request) -> web.Response:
    user = await administrator(request)
    dataset = await dataset_in_path(request)
    repo = jobs(request)
    target = await repo.request_abort(dataset.dataset_uid)
    job = await repo.create(jb.ABORT, dataset.dataset_uid, holds_dataset=False, user=user.name, target_job=target)
    await jb.enqueue(request.app[QUEUE], request.app[SETTINGS].queue_name, job.job_id)
    return json_response({"job_id": job.job_id})


async def versions(request: web.Request) -> web.Response:
    await administrator(request)
    dataset = await dataset_in_path(request)
    saved = await datasets(request).versions(dataset.dataset_uid)
    return json_response([{k: v for k, v in s.items() if k != "data_key"} for s in saved])


async def job(request: web.Request) -> web.Response:
    await administrator(request)
    return json_response((await jobs(request).get(request.match_info["job_id"])).view())
