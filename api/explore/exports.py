"""Synchronous exports: GET …/exports lists the formats that fit a dataset; GET
…/exports/{format} streams the file, with the query parameters (select, where, order_by,
group_by, limit, refine, exclude), the common options (timezone, use_labels, compressed, epsg)
and the format's own. The portal's /explore/dataset/{id}/download/?format=… is the same."""
from __future__ import annotations

import pyarrow.dataset as pads
from aiohttp import web

from api.explore.params import visible_dataset
from api.fileresponse import disposition
from api.explore.streaming import QueueSink, stream
from api.explore.views import catalog_base, json_response, link
from api.keys import STORAGE
from domain.errors import Invalid
from domain.query import RecordQuery
from formats import REGISTRY, Format

# Spellings of the portal's download URL and older clients → our option names.
OPTION_ALIASES = {"csv_separator": "delimiter", "use_labels_for_header": "use_labels"}
IGNORED = {"apikey", "lang", "format"}


def _options(request: web.Request, fmt: Format) -> dict[str, str]:
    """The format options among the query parameters; anything neither an option nor a query
    parameter is refused with a 400 naming it."""
    options: dict[str, str] = {}
    unknown = []
    for name, value in request.query.items():
        name = OPTION_ALIASES.get(name, name)
        if name in fmt.all_options:
            options[name] = value
        elif name not in RecordQuery.EXPORT_PARAMS and name not in IGNORED:
            unknown.append(name)
    if unknown:
        raise Invalid(f"unknown parameter(s) {', '.join(sorted(set(unknown)))} for a {fmt.name} export; "
                      f"options of this format: {', '.join(sorted(fmt.all_options))}", error_code="InvalidParameter")
    return options


async def formats(request: web.Request) -> web.Response:
    dataset = await visible_dataset(request)
    base = f"{catalog_base(request)}/datasets/{dataset.dataset_id}/exports"
    fitting = [f for f in REGISTRY if f.fits(dataset.fields)]
    return json_response({"links": [link("self", base)] + [link(f.name, f"{base}/{f.name}") for f in fitting]})


async def export(request: web.Request) -> web.StreamResponse:
    return await _export(request, REGISTRY.get(request.match_info["format"]))


async def portal_download(request: web.Request) -> web.StreamResponse:
    name = request.query.get("format")
    if not name:
        raise Invalid("parameter 'format' is required, e.g. ?format=csv", error_code="InvalidParameter")
    return await _export(request, REGISTRY.get(name))


async def _export(request: web.Request, fmt: Format) -> web.StreamResponse:
    dataset = await visible_dataset(request)
    query = RecordQuery.from_params(request.query, allowed=RecordQuery.EXPORT_PARAMS)
    raw_options = _options(request, fmt)
    source = pads.dataset(str(request.app[STORAGE].path(dataset.data_key)), format="parquet")
    scan = query.scan(source, dataset.fields)  # validates the query: ODSQL errors are 400s here
    fmt.check(scan.fields)
    options = fmt.parse_options(raw_options, scan.fields)
    fmt.probe(scan.schema, scan.fields, options)

    file_name = fmt.filename(dataset.dataset_id, options)
    response = web.StreamResponse(headers={
        "Content-Type": fmt.content_type(options),
        "Content-Disposition": disposition(file_name),
    })

    def produce(sink: QueueSink) -> None:
        writer = fmt.open(sink, scan.schema, scan.fields, options)
        try:
            for batch in scan.batches():
                writer.write(batch)
            writer.close()
        except BaseException:
            writer.abort()
            raise
        sink.finish()

    return await stream(request, response, produce)
