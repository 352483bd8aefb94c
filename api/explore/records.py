"""Records, one record, aggregates and facets of a dataset. Every query runs in a query
process (api/isolation) with its filter and projection pushed down to the Parquet scan; a
group_by, an aggregate, a facet or a sort is a heavy call, the rest light. The query is
parsed and checked there too: even that, for a query at the limits, would hold the event
loop for long."""
from __future__ import annotations

import asyncio

import orjson
from aiohttp import web

from api.explore.params import MAX_GROUPS, integer, page, visible_dataset
from api.explore.views import catalog_base, json_response, paging_links, rows
from api.isolation.pool import HEAVY, LIGHT
from api.keys import POOL, STORAGE
from domain.datasets import Dataset, open_version
from domain.errors import Invalid, NotFound
from domain.fields import fields_for
from domain.query import RecordQuery, timezone_param

FACET_TYPES = ("text", "date", "datetime", "boolean", "int")


def _arguments(dataset: Dataset, query: RecordQuery, **more) -> dict:
    return {"dataset": dataset.to_json().decode(), "query": query.as_dict(), **more}


async def records(request: web.Request) -> web.Response:
    dataset = await visible_dataset(request)
    query = RecordQuery.from_params(request.query, allowed=RecordQuery.RECORDS_PARAMS)
    limit, offset = page(request, max_limit=MAX_GROUPS, reach=MAX_GROUPS) if query.group_by else page(request)
    timezone = timezone_param(request.query)
    kind = HEAVY if query.heavy else LIGHT
    result, body = await request.app[POOL].call(kind, "records", _arguments(
        dataset, query, limit=limit, offset=offset, timezone=timezone))
    base = f"{catalog_base(request)}/datasets/{dataset.dataset_id}/records"
    total = result["total_count"]
    return json_response({
        "total_count": total,
        "links": paging_links(base, dict(request.query), total, limit, offset),
        "results": orjson.Fragment(body),
    })


async def record(request: web.Request) -> web.Response:
    dataset = await visible_dataset(request)
    raw = request.match_info["record_id"]
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 18) or int(raw) >= dataset.records_count:
        raise NotFound(f"no record {raw!r} in dataset {dataset.dataset_id!r}", error_code="UnknownRecordError")
    timezone = timezone_param(request.query)
    source = await asyncio.to_thread(open_version, request.app[STORAGE], dataset.data_key)
    table = await asyncio.to_thread(lambda: source.take([int(raw)]))  # one row by position: nothing to budget
    result = rows(table, fields_for(table.schema, dataset.fields), timezone)[0]
    return json_response({"record_id": raw, **result})


async def aggregates(request: web.Request) -> web.Response:
    """The v2.0 aggregates: at most MAX_GROUPS groups, paged with limit and offset."""
    dataset = await visible_dataset(request)
    limit = integer(request, "limit", -1, -1, MAX_GROUPS)
    offset = integer(request, "offset", 0, 0, MAX_GROUPS)
    limit = MAX_GROUPS - offset if limit < 0 else limit
    if offset + limit > MAX_GROUPS:
        raise Invalid(f"offset + limit must be at most {MAX_GROUPS}", error_code="InvalidParameter")
    query = RecordQuery.from_params(request.query, allowed=RecordQuery.RECORDS_PARAMS)
    timezone = timezone_param(request.query)
    _, body = await request.app[POOL].call(HEAVY, "aggregates", _arguments(
        dataset, query, limit=limit, offset=offset, timezone=timezone))
    return json_response({"results": orjson.Fragment(body)})


async def facets(request: web.Request) -> web.Response:
    """Value counts of the text, date and boolean fields (years for dates), most frequent first."""
    dataset = await visible_dataset(request)
    query = RecordQuery.from_params(request.query, allowed=RecordQuery.FILTER_PARAMS + ("facet", "limit"))
    limit = integer(request, "limit", 50, 1, 1000)
    wanted = request.query.getall("facet", [])
    names = wanted or [f.name for f in dataset.fields if f.type in FACET_TYPES and f.type != "int"]
    by_name = {f.name: f for f in dataset.fields}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise Invalid(f"unknown facet field(s): {', '.join(unknown)}", error_code="InvalidParameter")
    _, body = await request.app[POOL].call(HEAVY, "facets", _arguments(dataset, query, names=names, limit=limit))
    return json_response({"facets": orjson.Fragment(body)})
