"""Synchronous exports: GET …/exports lists the formats that fit a dataset; GET
…/exports/{format} streams the file, with the query parameters (select, where, order_by,
group_by, limit, refine, exclude), the common options (timezone, use_labels, compressed, epsg)
and the format's own. The portal's /explore/dataset/{id}/download/?format=… is the same."""
from __future__ import annotations

import asyncio
import dataclasses
import logging

from aiohttp import web

from api.explore.params import visible_dataset
from api.fileresponse import disposition
from api.explore.views import catalog_base, json_response, link
from api.keys import POOL, STATE
from domain.alternative_exports import AlternativeExports
from domain.datasets import Dataset
from domain.errors import NotFound
from domain.fields import Field
from domain.managed_datasets import ManagedDatasets
from domain.errors import Invalid
from domain.query import RecordQuery
from formats import REGISTRY, Format

log = logging.getLogger("exportd.api")
STALLED_CLIENT_SECONDS = 60

# Spellings of the portal's download URL and older clients → our option names.
OPTION_ALIASES = {"csv_separator": "delimiter", "use_labels_for_header": "use_labels"}
IGNORED = {"apikey", "lang", "format"}
SOME_FORMATS_OPTIONS = frozenset(name for f in REGISTRY for name in f.all_options)


def format_options(request: web.Request, fmt: Format) -> dict[str, str]:
    """The format options among the query parameters. Another format's option is ignored, as
    the platform ignores it (odsclient sends csv_separator whatever the format); a name that
    is no format's option nor a query parameter (a misspelling) is refused with a 400 naming
    it, and so, in the query process, is a bad value of this format's own."""
    options: dict[str, str] = {}
    unknown = []
    for name, value in request.query.items():
        name = OPTION_ALIASES.get(name, name)
        if name in fmt.all_options:
            options[name] = value
        elif name not in RecordQuery.EXPORT_PARAMS and name not in IGNORED and name not in SOME_FORMATS_OPTIONS:
            unknown.append(name)
    if unknown:
        raise Invalid(f"unknown parameter(s) {', '.join(sorted(set(unknown)))} for a {fmt.name} export; "
                      f"options of this format: {', '.join(sorted(fmt.all_options))}", error_code="InvalidParameter")
    return options


async def formats(request: web.Request) -> web.Response:
    """The formats that fit the dataset, then its alternative exports (static files an
    administrator attached), as the platform lists them."""
    dataset = await visible_dataset(request)
    base = f"{catalog_base(request)}/datasets/{dataset.dataset_id}"
    fitting = [f for f in REGISTRY if f.fits(dataset.fields)]
    attached = await AlternativeExports(request.app[STATE]).list(dataset.dataset_uid)
    return json_response({
        "links": [link("self", f"{base}/exports")] + [link(f.name, f"{base}/exports/{f.name}") for f in fitting],
        "alternative_exports": [{"id": a.export_uid, "title": a.filename, "mimetype": a.mimetype,
                                 "url": f"{base}/attachments/{a.export_uid}"} for a in attached],
    })


async def export(request: web.Request) -> web.StreamResponse:
    return await _export(request, REGISTRY.get(request.match_info["format"]))


async def portal_download(request: web.Request) -> web.StreamResponse:
    name = request.query.get("format")
    if not name:
        raise Invalid("parameter 'format' is required, e.g. ?format=csv", error_code="InvalidParameter")
    return await _export(request, REGISTRY.get(name))


async def snapshot_export(request: web.Request) -> web.StreamResponse:
    """A saved version (…/snapshots/{snapshot_id}/exports/{format}), exported like the dataset."""
    dataset = await visible_dataset(request)
    wanted = request.match_info["snapshot_id"]
    saved = {v["version_uid"]: v for v in await ManagedDatasets(request.app[STATE]).versions(dataset.dataset_uid)}
    if wanted not in saved:
        raise NotFound(f"dataset {dataset.dataset_id!r} has no snapshot {wanted!r}")
    version = saved[wanted]
    snapshot = dataclasses.replace(dataset, data_key=version["data_key"], version=f"{version['version']}@{wanted}",
                                   fields=[Field(**f) for f in version["fields"]])
    return await _export(request, REGISTRY.get(request.match_info["format"]), snapshot)


async def _export(request: web.Request, fmt: Format, dataset: Dataset | None = None) -> web.StreamResponse:
    """The export streamed from a query process: errors found before its first bytes (the
    query, the options, a budget) answer as JSON errors; one after them cuts the body short,
    so the client sees an incomplete transfer, never a complete-looking truncated file."""
    dataset = dataset or await visible_dataset(request)
    query = RecordQuery.from_params(request.query, allowed=RecordQuery.EXPORT_PARAMS)
    options = format_options(request, fmt)
    args = {"dataset": dataset.to_json().decode(), "query": query.as_dict(), "export_type": fmt.name, "options": options}
    return await streamed_call(request, "stream_export", args, dataset.dataset_id)


async def streamed_call(request: web.Request, call: str, args: dict, what: str) -> web.StreamResponse:
    """The body a streamed call of a query process writes (see _export), relayed to the client."""
    async with request.app[POOL].stream(call, args) as streamed:
        response = web.StreamResponse(headers={
            "Content-Type": streamed.head["content_type"],
            "Content-Disposition": disposition(streamed.head["file_name"]),
        })
        await response.prepare(request)
        try:
            while (chunk := await streamed.next()) is not None:
                # a client that stops reading would hold a query process for ever
                await asyncio.wait_for(response.write(chunk), STALLED_CLIENT_SECONDS)
            await response.write_eof()
        except Exception as exc:
            if isinstance(exc, TimeoutError):
                log.warning("streamed export of %s cut: the client read nothing for %d s", what, STALLED_CLIENT_SECONDS)
            elif not isinstance(exc, ConnectionResetError):
                log.error("streamed export of %s failed after its first bytes: %s", what, exc)
            if request.transport is not None:
                request.transport.close()
    return response
