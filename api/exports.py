"""The OSDI Export resource at /api/v1/exports: create (POST), list (GET, HAL+JSON, paged,
newest first), read, cancel (DELETE); PUT is not supported (405). Administrators approve or
reject exports waiting for approval."""
from __future__ import annotations

import asyncio
import contextlib
import math
import time
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlparse

import orjson
from aiohttp import web
from multidict import MultiDict

from api import hal
from api.auth import administrator, current_user, visitor
from api.bodies import int_field, json_object, query_int, string_field
from api.isolation.pool import HEAVY, LIGHT
from api.keys import DATASETS, EXPORTS, POOL, QUEUE, SETTINGS, STATE, STORAGE, WAITERS
from api.waiting import RECHECK
from domain import exports as ex
from domain import delta, estimates, ratelimit, webhooks
from domain.datasets import DATASET_ID, Dataset
from domain.managed_datasets import ManagedDatasets
from domain.errors import Conflict, Invalid, NotFound
from domain.exports import Export, expiry_from
from domain.queue import enqueue_export
from domain.sharing import SharedFiles, digest, drop_files
from domain.query import RecordQuery
from domain.timeutil import now
from domain.users import User, is_anonymous
from formats import REGISTRY

DATASET_PATH = re.compile(r"/api/(?:v2|explore/v2\.\d+)/catalog/datasets/([^/?#]+)/?(?:records/?|exports/?)?$")
# OSDI names what it exports a list (its own example posts …/api/v1/lists/ID): here, a dataset
LIST_PATH = re.compile(r"/api/v1/lists/([^/?#]+)/?$")
PER_PAGE = 25
MAX_WAIT = 60  # seconds GET …/exports/{id}?wait= may hold a request
MAX_PER_PAGE = 100
MAX_PAGE = 1_000_000  # keeps page * per_page within Redis' 64-bit range offsets
DELETED = {"notice": "This export was successfully deleted."}


def resource_of(request: web.Request, export: Export) -> dict[str, Any]:
    settings = request.app[SETTINGS]
    return hal.export_resource(export, hal.origin(request), settings.origin_system, settings.secret_key)


async def resources_of(request: web.Request, exports: list[Export]) -> list[dict[str, Any]]:
    """The exports' resources, a queued one's with its queue_position and estimated_ready_date
    as the queue stands now."""
    view = await estimates.queue_view(request.app[STATE], exports, request.app[SETTINGS].worker_jobs)
    return [{**resource_of(request, e), **view.get(e.id, {})} for e in exports]


def _dataset_and_query(href: str) -> tuple[str, RecordQuery]:
    """The dataset id and the query (where, select, order_by, limit, …) an osdi:resource link
    names: a dataset URL, its records URL with query parameters, or an OSDI list URL."""
    parsed = urlparse(href)
    match = DATASET_PATH.search(parsed.path) or LIST_PATH.search(parsed.path)
    if not match:
        raise Invalid(
            "_links.osdi:resource.href must name a dataset, as "
            "http://HOST/api/v2/catalog/datasets/DATASET_ID (or OSDI's http://HOST/api/v1/lists/DATASET_ID)",
            error_code="invalid_resource"
        )
    return match.group(1), RecordQuery.from_params(MultiDict(parse_qsl(parsed.query)))


def _resource_href(body: dict[str, Any]) -> str:
    links = body.get("_links")
    resource = links.get("osdi:resource") if isinstance(links, dict) else None
    href = resource.get("href") if isinstance(resource, dict) else None
    if not isinstance(href, str) or not href:
        raise Invalid("the field _links.osdi:resource.href is required: the dataset to export")
    return href


@dataclass
class Planned:
    """A POST body checked as a new export's is: what it would export, and how many records."""
    dataset: Any
    fmt: Any
    href: str
    query: RecordQuery
    options: dict[str, Any]
    parsed: dict[str, Any]
    records: int | None  # None for a delta export: known once the worker computed it
    since: str = ""  # a delta export's earlier version or snapshot
    base: str = ""  # its storage key


async def _planned(request: web.Request, body: dict[str, Any], user: User) -> Planned:
    export_type = string_field(body, "export_type")
    fmt = REGISTRY.get(export_type)
    href = _resource_href(body)
    dataset_id, href_query = _dataset_and_query(href)
    try:
        dataset = await request.app[DATASETS].get(dataset_id)
    except NotFound:
        raise Invalid(f"no dataset {dataset_id!r}", error_code="unknown_dataset") from None
    if not dataset.published or not dataset.data_key:
        raise Invalid(f"dataset {dataset_id!r} is not published", error_code="unknown_dataset")
    if dataset.visibility != "domain" and not user.admin:
        raise Invalid(f"no dataset {dataset_id!r}", error_code="unknown_dataset")
    raw_query = body.get("query") or {}
    if not isinstance(raw_query, dict):
        raise Invalid("the field 'query' must be an object")
    query = href_query.merged(RecordQuery.from_json(raw_query))
    options = body.get("options") or {}
    if not isinstance(options, dict):
        raise Invalid("the field 'options' must be an object")
    since = string_field(body, "changes_since", required=False, max_length=delta.MAX_SINCE)
    base = ""
    if since:  # a delta export: the changes since that version, checked on the delta's fields
        base = await _base_version(request, dataset, since)
        dataset = delta.versioned(dataset, since)
    # refuse now, with a 400, what the worker would fail on; count what the export will hold
    kind = HEAVY if query.heavy else LIGHT
    checked, _ = await request.app[POOL].call(kind, "check_export", {
        "dataset": dataset.to_json().decode(), "query": query.as_dict(), "export_type": fmt.name, "options": options,
        "delta": bool(since)})
    return Planned(dataset, fmt, href, query, options, checked["options"], checked["records"], since, base)


async def _base_version(request: web.Request, dataset: Dataset, since: str) -> str:
    """The storage key of the version or snapshot a delta export's changes are since."""
    delta.key_fields(dataset)
    managed = ManagedDatasets(request.app[STATE])
    snapshots, changes = await asyncio.gather(managed.versions(dataset.dataset_uid), managed.changes(dataset.dataset_uid))
    return delta.base_key(dataset, since, snapshots, changes)


async def estimate(request: web.Request) -> web.Response:
    """What POST /api/v1/exports would make of this body, without making it: its records, and
    its size and duration from the format's measured cost (domain/estimates.py)."""
    user = await visitor(request)
    body = await json_object(request)
    plan = await _planned(request, body, user)
    if body.get("notify_url") not in (None, ""):
        webhooks.check_url(body["notify_url"])
    # a delta's count is known once computed: at most the dataset's records, as its approval assumes
    records = plan.dataset.records_count if plan.records is None else plan.records
    answer = estimates.estimate(await estimates.costs(request.app[STATE]), plan.fmt.name, records)
    return web.json_response({"export_type": plan.fmt.name, **answer}, headers={"Cache-Control": "private, no-store"})


async def create(request: web.Request) -> web.Response:
    user = await visitor(request)
    body = await json_object(request)
    settings = request.app[SETTINGS]
    if not user.admin:
        await ratelimit.check(request.app[STATE], user.name, settings.rate_limit)
    plan = await _planned(request, body, user)
    dataset, fmt, href, query, options, parsed, records = (plan.dataset, plan.fmt, plan.href, plan.query, plan.options,
                                                           plan.parsed, plan.records)
    if user.anonymous and body.get("notify_url") not in (None, ""):
        raise Invalid("the field 'notify_url' needs an account: its webhooks are signed with the key GET /api/v1/me "
                      "gives the token's user", field="notify_url")
    notify_url = await _notify_url(body, settings)
    once = body.get("expire_once_downloaded", False)
    if not isinstance(once, bool):
        raise Invalid("the field 'expire_once_downloaded' must be true or false (a JSON boolean)",
                      field="expire_once_downloaded")

    export = Export.new(
        owner=user.name,
        name=string_field(body, "name", required=False, default=f"{dataset.title} ({fmt.name})"),
        export_type=fmt.name,
        dataset_id=dataset.dataset_id,
        resource_href=href,
        options=options,
        query=query.as_dict(),
        records_total=records,
        notify_url=notify_url,
        origin=hal.origin(request),
        changes_since=plan.since,
        base_key=plan.base,
        expire_once_downloaded=once,
    )
    exports = request.app[EXPORTS]
    at_most = dataset.records_count if records is None else records  # a delta: its count is not known yet
    needs_approval = settings.approval_rows is not None and at_most > settings.approval_rows and not user.admin
    if needs_approval:
        await exports.create(export)
        await exports.transition(export.id, ex.PENDING_APPROVAL, expect=(ex.INITIALIZING,),
                                 detail=f"exports of more than {settings.approval_rows} records wait for an administrator's approval")
    elif await _ready_at_once(request, export, digest(dataset.dataset_id, dataset.version, query.as_dict(), fmt.name, parsed)):
        await exports.create(export)
    else:
        await exports.create(export)
        await _queue(request, export, expect=(ex.INITIALIZING,))
    created = await exports.get(export.id)  # counted created (and ready, if it shared a file) by exports.create
    location = hal.export_href(hal.origin(request), export.id)
    (resource,) = await resources_of(request, [created])
    return hal.hal_response(resource, status=201, headers={"Location": location})


async def _notify_url(body: dict[str, Any], settings) -> str:
    """The body's notify_url, checked now as the worker checks it before each attempt."""
    if body.get("notify_url") in (None, ""):
        return ""
    url = webhooks.check_url(body["notify_url"])
    try:
        await webhooks.resolve(url, bool(settings.webhook_allow_private))
    except webhooks.Unreachable as exc:
        raise Invalid(f"the field 'notify_url' cannot be used: {exc}", field="notify_url",
                      error_code="refused_notify_url" if exc.refused else None) from None
    return url


async def _ready_at_once(request: web.Request, export: Export, share: str) -> bool:
    """If a ready export already holds this very file, share it: the export is born ready."""
    found = await SharedFiles(request.app[STATE]).join(share, export.id)
    if found is None:
        return False
    moment = now()
    export.status = ex.READY
    export.file_key, export.file_name = found["file_key"], found["file_name"]
    export.size, export.records_done = int(found["size"]), int(found["records"])
    export.records_skipped, export.warnings = int(found["skipped"]), orjson.loads(found["warnings"])
    export.sha256 = found.get("sha256", "")  # a file shared before exports carried digests has none
    export.processed_date, export.expires_at = moment, expiry_from(moment, request.app[SETTINGS].export_ttl)
    return True


async def _queue(request: web.Request, export: Export, expect: tuple[str, ...], **values: Any) -> None:
    settings = request.app[SETTINGS]
    await request.app[EXPORTS].require(export.id, ex.QUEUED, expect=expect, **values)
    await enqueue_export(request.app[QUEUE], settings.queue_name, export.id, export.dataset_id)


async def collection(request: web.Request) -> web.Response:
    user = await current_user(request)
    page = query_int(request, "page", 1, 1, MAX_PAGE)
    per_page = query_int(request, "per_page", PER_PAGE, 1, MAX_PER_PAGE)
    status = request.query.get("status") or None
    if status is not None and status not in ex.STATUSES:
        raise Invalid(f"query parameter 'status' must be one of {', '.join(ex.STATUSES)}, not {status!r}")
    dataset_id = request.query.get("dataset") or None
    if dataset_id is not None and not DATASET_ID.match(dataset_id):
        raise Invalid(f"query parameter 'dataset' must be a dataset id, not {dataset_id[:100]!r}")
    total, exports = await request.app[EXPORTS].page(None if user.admin else user.name, page, per_page, status, dataset_id)
    total_pages = max(1, math.ceil(total / per_page))
    base = hal.origin(request)

    def page_href(number: int) -> dict[str, str]:
        suffix = f"&per_page={per_page}" if per_page != PER_PAGE else ""
        suffix += f"&status={status}" if status else ""
        suffix += f"&dataset={dataset_id}" if dataset_id else ""
        return {"href": f"{base}/api/v1/exports?page={number}{suffix}"}

    links: dict[str, Any] = {"self": page_href(page)}
    if page < total_pages:
        links["next"] = page_href(page + 1)
    if 1 < page <= total_pages + 1:
        links["prev"] = page_href(min(page - 1, total_pages))
    links["curies"] = hal.curies(base)
    links["osdi:exports"] = [{"href": hal.export_href(base, e.id)} for e in exports]
    body = {
        "total_pages": total_pages,
        "per_page": per_page,
        "page": page,
        "total_records": total,
        "_links": links,
        "_embedded": {"osdi:exports": await resources_of(request, exports)},
    }
    return hal.hal_response(body)


async def _visible(request: web.Request, user: User) -> Export:
    """The export named in the path, if this user may see it (someone else's: 404). A visitor
    without an account's export is seen by whoever knows its id: a UUID4, its URL is the only
    key to it, as the visitor may come back from another address."""
    export = await request.app[EXPORTS].get(request.match_info["export_id"])
    if export.owner != user.name and not user.admin and not is_anonymous(export.owner):
        raise NotFound(f"no export {export.id!r}")
    return export


async def read(request: web.Request) -> web.Response:
    """One export. With ?wait=N (≤ 60 s) the answer waits for the first change of status, so a
    client need not poll hard; a non-final export says when to ask again (Retry-After)."""
    user = await visitor(request)
    wait = query_int(request, "wait", 0, 0, MAX_WAIT)
    export = await _visible(request, user)
    if wait and export.status in ex.LIVE:
        export = await _changed(request, export, time.monotonic() + wait)
    headers = {"Retry-After": "1"} if export.status in ex.LIVE else None
    (resource,) = await resources_of(request, [export])
    return hal.hal_response(resource, headers=headers)


async def _changed(request: web.Request, export: Export, deadline: float) -> Export:
    """The export once its status differs from `export`'s, or as it is at the deadline. Woken by
    the status channel (api/waiting.py), with a look of its own every RECHECK seconds."""
    async with request.app[WAITERS].watch(export.id) as changed:
        current = await request.app[EXPORTS].get(export.id)  # what changed before the watch began
        while current.status == export.status and (left := deadline - time.monotonic()) > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), min(left, RECHECK))
            changed.clear()
            current = await request.app[EXPORTS].get(export.id)
    return current


async def delete(request: web.Request) -> web.Response:
    """Cancel and remove: a running worker notices between batches and leaves no file."""
    user = await visitor(request)
    export = await _visible(request, user)
    await request.app[EXPORTS].delete(export)
    await drop_files(SharedFiles(request.app[STATE]), request.app[STORAGE], export)
    return hal.hal_response(DELETED)


async def approve(request: web.Request) -> web.Response:
    await administrator(request)
    export = await _visible_to_admin(request)
    body = await json_object(request, required=False)
    detail = string_field(body, "detail", required=False)
    await _queue(request, export, expect=(ex.PENDING_APPROVAL,), approved_date=now(), detail=detail)
    return hal.hal_response(resource_of(request, await request.app[EXPORTS].get(export.id)))


async def reject(request: web.Request) -> web.Response:
    await administrator(request)
    export = await _visible_to_admin(request)
    body = await json_object(request)
    detail = string_field(body, "detail")
    await request.app[EXPORTS].require(export.id, ex.REJECTED, expect=(ex.PENDING_APPROVAL,), detail=detail)
    return hal.hal_response(resource_of(request, await request.app[EXPORTS].get(export.id)))


MAX_PRIORITY = 9


async def prioritize(request: web.Request) -> web.Response:
    """Give an export still waiting to run a priority (0: none): workers take it first."""
    await administrator(request)
    export = await _visible_to_admin(request)
    priority = int_field(await json_object(request), "priority", 0, MAX_PRIORITY)
    if not await request.app[EXPORTS].prioritize(export.id, priority):
        raise Conflict(f"export {export.id} is {export.status}: only an export waiting to run takes a priority")
    return hal.hal_response(resource_of(request, await request.app[EXPORTS].get(export.id)))


async def _visible_to_admin(request: web.Request) -> Export:
    return await request.app[EXPORTS].get(request.match_info["export_id"])
