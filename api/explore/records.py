"""Records, one record, aggregates and facets of a dataset. Every query runs in a thread
with its filter and projection pushed down to the Parquet scan."""
from __future__ import annotations

import asyncio

import pyarrow.dataset as pads
from aiohttp import web

from api.explore.params import integer, page, visible_dataset
from api.explore.views import catalog_base, json_response, paging_links, rows
from domain.fields import fields_for
from api.keys import STORAGE
from domain.datasets import Dataset, open_version
from domain.errors import NotFound
from domain.query import RecordQuery, timezone_param

FACET_TYPES = ("text", "date", "datetime", "boolean", "int")


async def _source(request: web.Request, dataset: Dataset) -> pads.Dataset:
    return await asyncio.to_thread(open_version, request.app[STORAGE], dataset.data_key)


async def records(request: web.Request) -> web.Response:
    dataset = await visible_dataset(request)
    limit, offset = page(request)
    query = RecordQuery.from_params(request.query, allowed=RecordQuery.RECORDS_PARAMS)
    query.validate(dataset.fields)
    timezone = timezone_param(request.query)
    source = await _source(request, dataset)

    def work():
        table = query.table(source, dataset.fields, limit=limit, offset=offset)
        total = table.num_rows if query.group_by else query.count(source, dataset.fields)
        return total, table

    total, table = await asyncio.to_thread(work)
    base = f"{catalog_base(request)}/datasets/{dataset.dataset_id}/records"
    return json_response({
        "total_count": total,
        "links": paging_links(base, dict(request.query), total, limit, offset),
        "results": rows(table, fields_for(table.schema, dataset.fields), timezone),
    })


async def record(request: web.Request) -> web.Response:
    dataset = await visible_dataset(request)
    raw = request.match_info["record_id"]
    if not raw.isdigit() or int(raw) >= dataset.records_count:
        raise NotFound(f"no record {raw!r} in dataset {dataset.dataset_id!r}", error_code="UnknownRecordError")
    source = await _source(request, dataset)
    table = await asyncio.to_thread(lambda: source.take([int(raw)]))
    timezone = timezone_param(request.query)
    result = rows(table, fields_for(table.schema, dataset.fields), timezone)[0]
    return json_response({"record_id": raw, **result})


async def aggregates(request: web.Request) -> web.Response:
    dataset = await visible_dataset(request)
    limit = integer(request, "limit", -1, -1)
    query = RecordQuery.from_params(request.query, allowed=RecordQuery.RECORDS_PARAMS)
    query.validate(dataset.fields)
    timezone = timezone_param(request.query)
    source = await _source(request, dataset)
    table = await asyncio.to_thread(query.table, source, dataset.fields, limit=None if limit < 0 else limit)
    return json_response({"results": rows(table, fields_for(table.schema, dataset.fields), timezone)})


async def facets(request: web.Request) -> web.Response:
    """Value counts of the text, date and boolean fields (years for dates), most frequent first."""
    dataset = await visible_dataset(request)
    query = RecordQuery.from_params(request.query, allowed=RecordQuery.FILTER_PARAMS + ("facet", "limit"))
    query.validate(dataset.fields)
    limit = integer(request, "limit", 50, 1, 1000)
    wanted = request.query.getall("facet", [])
    names = wanted or [f.name for f in dataset.fields if f.type in FACET_TYPES and f.type != "int"]
    by_name = {f.name: f for f in dataset.fields}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        from domain.errors import Invalid
        raise Invalid(f"unknown facet field(s): {', '.join(unknown)}", error_code="InvalidParameter")
    source = await _source(request, dataset)

    def work():
        out = []
        for name in names:
            key = f"year(`{name}`)" if by_name[name].type in ("date", "datetime") else f"`{name}`"
            counted = query.with_grouping(select=f"{key} as value, count(*) as count", group_by=key,
                                          order_by="count desc").table(source, dataset.fields, limit=limit)
            out.append({"name": name, "facets": [
                {"name": str(v), "value": str(v), "count": c, "state": "displayed"}
                for v, c in zip(counted.column("value").to_pylist(), counted.column("count").to_pylist()) if v is not None
            ]})
        return out

    return json_response({"facets": await asyncio.to_thread(work)})
