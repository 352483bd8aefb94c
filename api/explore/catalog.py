"""The catalog: GET datasets (paged; select, where, refine, exclude, group_by and order_by over
their metadata, checked like a dataset's records), GET one dataset, the catalog's facets and
its exports (csv, json, xlsx). The queries run in a query process (domain/catalog.py) over
the metadata of the datasets this caller may see."""
from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from api.explore.exports import format_options, streamed_call
from api.explore.params import MAX_GROUPS, explorer, page, visible_dataset
from api.explore.views import catalog_base, dataset_view, json_response, paging_links
from api.isolation.pool import HEAVY, LIGHT
from api.keys import DATASETS, POOL
from domain import catalog
from domain.datasets import Dataset
from domain.errors import Invalid
from domain.query import RecordQuery, timezone_param
from formats import REGISTRY

QUERY_PARAMS = RecordQuery.RECORDS_PARAMS


async def _visible(request: web.Request) -> list[Dataset]:
    user = await explorer(request)
    everything = await request.app[DATASETS].list()
    return [d for d in everything if d.published and (d.visibility == "domain" or (user is not None and user.admin))]


def _entries(datasets: list[Dataset]) -> list[dict[str, Any]]:
    return [catalog.row(d) for d in datasets]


async def datasets(request: web.Request) -> web.Response:
    visible = await _visible(request)
    query = RecordQuery.from_params(request.query, allowed=QUERY_PARAMS)
    limit, offset = page(request, max_limit=MAX_GROUPS, reach=MAX_GROUPS) if query.group_by else page(request)
    ids = query.select is None and query.group_by is None
    if ids:
        query = RecordQuery(select="dataset_id", where=query.where, refine=query.refine, exclude=query.exclude,
                            order_by=query.order_by or "dataset_id")
    kind = HEAVY if query.group_by or (query.select and "(" in query.select) else LIGHT
    result, body = await request.app[POOL].call(kind, "catalog_page", {
        "entries": _entries(visible), "query": query.as_dict(), "limit": limit, "offset": offset,
        "timezone": timezone_param(request.query), "ids": ids})
    base = catalog_base(request)
    total = result["total_count"]
    if ids:
        by_id = {d.dataset_id: d for d in visible}
        results: Any = [dataset_view(by_id[i], base) for i in result["ids"]]
    else:
        results = orjson.Fragment(body)
    return json_response({
        "total_count": total,
        "links": paging_links(f"{base}/datasets", dict(request.query), total, limit, offset),
        "results": results,
    })


async def dataset(request: web.Request) -> web.Response:
    return json_response(dataset_view(await visible_dataset(request), catalog_base(request)))


async def facets(request: web.Request) -> web.Response:
    """How many datasets hold each value of the catalog's facets (features, theme, keyword,
    publisher, license, language), most frequent first."""
    visible = await _visible(request)
    query = RecordQuery.from_params(request.query, allowed=RecordQuery.FILTER_PARAMS)
    names = request.query.getall("facet", []) or list(catalog.FACETS)
    _, body = await request.app[POOL].call(LIGHT, "catalog_facets", {
        "entries": _entries(visible), "query": query.as_dict(), "names": names})
    return json_response({"links": [{"rel": "self", "href": f"{catalog_base(request)}/facets"}],
                          "facets": orjson.Fragment(body)})


async def export(request: web.Request) -> web.StreamResponse:
    """The catalog as a file: the datasets the query selects, in one of catalog.EXPORT_FORMATS."""
    fmt = REGISTRY.get(request.match_info["format"])
    if fmt.name not in catalog.EXPORT_FORMATS:
        raise Invalid(f"the catalog is exported as {', '.join(catalog.EXPORT_FORMATS)}, not {request.match_info['format']!r}",
                      error_code="InvalidParameter")
    visible = await _visible(request)
    query = RecordQuery.from_params(request.query, allowed=RecordQuery.EXPORT_PARAMS)
    options = format_options(request, fmt)
    return await streamed_call(request, "catalog_export", {
        "entries": _entries(visible), "query": query.as_dict(), "export_type": fmt.name, "options": options}, "the catalog")

