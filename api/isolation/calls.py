"""What a query process runs for the web process: the Explore API's queries, the check of a
new export, and streamed exports. Each call takes JSON-ready arguments, writes its body to
`out` and returns its result as a dict; errors are raised as anywhere else and travel back as
the JSON error they would have been in the web process."""
from __future__ import annotations

from typing import Any, BinaryIO, Callable

import orjson
import pyarrow.dataset as pads

from api.explore.views import rows
from domain.datasets import Dataset, open_version
from domain.fields import fields_for
from domain.query import RecordQuery
from domain.settings import Settings
from domain.storage import Storage, open_storage
from formats import REGISTRY


class Env:
    """What a query process keeps between calls: the settings and, opened on first use, the storage."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._storage: Storage | None = None

    def source(self, dataset: Dataset) -> pads.Dataset:
        if self._storage is None:
            self._storage = open_storage(self.settings)
        return open_version(self._storage, dataset.data_key)


def _read(dataset: str, query: dict[str, Any]) -> tuple[Dataset, RecordQuery]:
    """The dataset and the query, checked against its fields (and the request's term budget)."""
    data, wanted = Dataset.from_json(dataset), RecordQuery.from_json(query)
    wanted.validate(data.fields)
    return data, wanted


def records(env: Env, out: BinaryIO, dataset: str, query: dict[str, Any], limit: int, offset: int,
            timezone: str, groups: bool = False) -> dict[str, Any]:
    """A page of records (or of groups): the results array as the body, the total count."""
    data, wanted = _read(dataset, query)
    source = env.source(data)
    table = wanted.table(source, data.fields, limit=limit, offset=offset)
    total = table.num_rows if groups else wanted.count(source, data.fields)
    out.write(orjson.dumps(rows(table, fields_for(table.schema, data.fields), timezone)))
    return {"total_count": total}


def aggregates(env: Env, out: BinaryIO, dataset: str, query: dict[str, Any], limit: int, offset: int,
               timezone: str) -> dict[str, Any]:
    data, wanted = _read(dataset, query)
    table = wanted.table(env.source(data), data.fields, limit=limit, offset=offset)
    out.write(orjson.dumps(rows(table, fields_for(table.schema, data.fields), timezone)))
    return {}


def facets(env: Env, out: BinaryIO, dataset: str, query: dict[str, Any], names: list[str], limit: int) -> dict[str, Any]:
    """Value counts of each field in `names` (years for dates), most frequent first."""
    data, wanted = _read(dataset, query)
    source = env.source(data)
    by_name = {f.name: f for f in data.fields}
    found = []
    for name in names:
        key = f"year(`{name}`)" if by_name[name].type in ("date", "datetime") else f"`{name}`"
        counted = wanted.with_grouping(select=f"{key} as value, count(*) as count", group_by=key,
                                       order_by="count desc").table(source, data.fields, limit=limit)
        found.append({"name": name, "facets": [
            {"name": str(v), "value": str(v), "count": c, "state": "displayed"}
            for v, c in zip(counted.column("value").to_pylist(), counted.column("count").to_pylist()) if v is not None
        ]})
    out.write(orjson.dumps(found))
    return {}


def _planned(env: Env, dataset: str, query: dict[str, Any], export_type: str, options: dict[str, Any],
             strict: bool = False):
    """(dataset, format, scan, parsed options) of an export, refusing what the writer would fail on;
    `strict`: the options are a JSON body's (formats.base.Option.parse)."""
    data, wanted = _read(dataset, query)
    fmt = REGISTRY.get(export_type)
    scan = wanted.scan(env.source(data), data.fields)
    fmt.check(scan.fields)
    parsed = fmt.parse_options(options, scan.fields, strict)
    fmt.probe(scan.schema, scan.fields, parsed)
    return data, fmt, scan, parsed


def check_export(env: Env, out: BinaryIO, dataset: str, query: dict[str, Any], export_type: str,
                 options: dict[str, Any]) -> dict[str, Any]:
    """What a new export will hold, refused now (as a 400) where the worker would fail on it:
    its record count and parsed options."""
    _, _, scan, parsed = _planned(env, dataset, query, export_type, options, strict=True)
    return {"records": scan.count(), "options": parsed}


def stream_export(env: Env, out: BinaryIO, dataset: str, query: dict[str, Any], export_type: str,
                  options: dict[str, Any], head: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """A whole export written to `out`; `head` is told its content type and file name first,
    once the query and options are known to be good."""
    data, fmt, scan, parsed = _planned(env, dataset, query, export_type, options)
    scan = scan.projected(fmt.fields_read(scan.fields, parsed))
    head({"content_type": fmt.content_type(parsed), "file_name": fmt.filename(data.dataset_id, parsed)})
    writer = fmt.open(out, scan.schema, scan.fields, parsed, name=data.dataset_id)
    try:
        for batch in scan.batches():
            writer.write(batch)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return {}


CALLS: dict[str, Callable[..., dict[str, Any]]] = {
    "records": records, "aggregates": aggregates, "facets": facets,
    "check_export": check_export, "stream_export": stream_export,
}
