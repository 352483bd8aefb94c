"""How datasets, records and link lists look in the Explore API's JSON."""
from __future__ import annotations

from typing import Any

import orjson
import pyarrow as pa
from aiohttp import web

from domain import metadata
from domain.catalog import features
from domain.datasets import Dataset
from domain.fields import Field
from formats.json import json_columns


def catalog_base(request: web.Request) -> str:
    """Origin plus the prefix this request came in under (/api/v2/catalog or
    /api/explore/v2.1/catalog), so links keep the client's API version."""
    path = request.path
    return f"{request.scheme}://{request.host}{path[: path.index('/catalog') + len('/catalog')]}"


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json")


def link(rel: str, href: str) -> dict[str, str]:
    return {"rel": rel, "href": href}


def dataset_view(dataset: Dataset, base: str) -> dict[str, Any]:
    href = f"{base}/datasets/{dataset.dataset_id}"
    return {
        "dataset_id": dataset.dataset_id,
        "dataset_uid": dataset.dataset_uid,
        "visibility": dataset.visibility,
        "has_records": dataset.records_count > 0,
        "data_visible": True,
        "features": features(dataset),
        "metas": metadata.plain(dataset),
        "fields": [{"name": f.name, "label": f.label, "type": f.type, "annotations": {}, "description": None}
                   for f in dataset.fields],
        "attachments": [],
        "alternative_exports": [],
        "links": [
            link("self", href),
            link("records", f"{href}/records"),
            link("exports", f"{href}/exports"),
            link("aggregates", f"{href}/aggregates"),
            link("attachments", f"{href}/attachments"),
            link("files", f"{href}/files"),
            link("reuses", f"{href}/reuses"),
            link("snapshots", f"{href}/snapshots"),
            link("catalog", f"{base}/datasets"),
        ],
    }


def rows(table: pa.Table, fields: list[Field], timezone: str) -> list[dict[str, Any]]:
    """A small result table as JSON-ready records (datetimes in `timezone`)."""
    names = table.column_names
    out: list[dict[str, Any]] = []
    for batch in table.to_batches():
        for values in zip(*json_columns(batch, fields, timezone)):
            out.append(dict(zip(names, values)))
    return out


def paging_links(base_href: str, query: dict[str, str], total: int, limit: int, offset: int) -> list[dict[str, str]]:
    """self/first/prev/next/last over limit and offset."""
    from urllib.parse import urlencode

    def at(start: int) -> str:
        params = {k: v for k, v in query.items() if k not in ("offset", "limit")}
        params.update(limit=str(limit), offset=str(start))
        return f"{base_href}?{urlencode(params)}"

    links = [link("self", at(offset)), link("first", at(0))]
    if limit:
        last = max(0, ((total - 1) // limit) * limit) if total else 0
        if offset > 0:
            links.append(link("prev", at(max(0, offset - limit))))
        if offset + limit < total:
            links.append(link("next", at(offset + limit)))
        links.append(link("last", at(last)))
    return links
