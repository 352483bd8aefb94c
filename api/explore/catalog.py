"""The catalog: GET datasets (paged, where/order_by over their metadata) and GET one dataset."""
from __future__ import annotations

import asyncio

import pyarrow as pa
import pyarrow.dataset as pads
from aiohttp import web

from api.explore.params import explorer, page, repeated, visible_dataset
from api.explore.views import catalog_base, dataset_view, json_response, paging_links
from api.keys import DATASETS
from domain.datasets import Dataset
from domain.fields import Field
from domain.query import RecordQuery

METADATA_FIELDS = [
    Field("dataset_id", "text", "Dataset identifier"),
    Field("title", "text", "Title"),
    Field("description", "text", "Description"),
    Field("records_count", "int", "Number of records"),
    Field("modified", "text", "Last modified"),
    Field("visibility", "text", "Visibility"),
]


def _metadata(datasets: list[Dataset]) -> pa.Table:
    return pa.table({
        "dataset_id": [d.dataset_id for d in datasets],
        "title": [d.title for d in datasets],
        "description": [d.description for d in datasets],
        "records_count": pa.array([d.records_count for d in datasets], pa.int64()),
        "modified": [d.modified for d in datasets],
        "visibility": [d.visibility for d in datasets],
    })


async def datasets(request: web.Request) -> web.Response:
    user = await explorer(request)
    limit, offset = page(request)
    everything = await request.app[DATASETS].list()
    visible = [d for d in everything if d.published and (d.visibility == "domain" or (user is not None and user.admin))]
    query = RecordQuery(where=tuple(repeated(request, "where")), order_by=request.query.get("order_by") or "dataset_id",
                        select="dataset_id")
    source = pads.dataset(_metadata(visible))
    total, chosen = await asyncio.to_thread(
        lambda: (query.count(source, METADATA_FIELDS), query.table(source, METADATA_FIELDS, limit=limit, offset=offset)))
    by_id = {d.dataset_id: d for d in visible}
    base = catalog_base(request)
    return json_response({
        "total_count": total,
        "links": paging_links(f"{base}/datasets", dict(request.query), total, limit, offset),
        "results": [dataset_view(by_id[i], base) for i in chosen.column("dataset_id").to_pylist()],
    })


async def dataset(request: web.Request) -> web.Response:
    return json_response(dataset_view(await visible_dataset(request), catalog_base(request)))
