"""What a query process runs for the web process: the Explore API's queries, the check of a
new export, and streamed exports. Each call takes JSON-ready arguments, writes its body to
`out` and returns its result as a dict; errors are raised as anywhere else and travel back as
the JSON error they would have been in the web process."""
from __future__ import annotations

import tempfile
from typing import Any, BinaryIO, Callable

import orjson
import pyarrow.dataset as pads

from api.explore.views import rows
from domain import catalog, odsql
from domain.errors import Invalid
from domain.datasets import Dataset, open_version
from domain.delta import schema_of
from domain.fields import fields_for
from domain.query import RecordQuery
from domain.settings import Settings
from domain.storage import Storage, open_storage
from formats import REGISTRY, datapackage


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
            timezone: str) -> dict[str, Any]:
    """A page of records (or of groups): the results array as the body, the total count (of
    groups, when the query aggregates: 1 for a plain aggregate)."""
    data, wanted = _read(dataset, query)
    source = env.source(data)
    table = wanted.table(source, data.fields, limit=limit, offset=offset)
    if wanted.group_by or odsql.parse_select(wanted.select, data.fields).aggregated:
        total = wanted.groups(source, data.fields, table.num_rows, limit, offset)
    else:
        total = wanted.count(source, data.fields)
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
             strict: bool = False, delta: bool = False):
    """(dataset, format, scan, parsed options) of an export, refusing what the writer would fail on;
    `strict`: the options are a JSON body's (formats.base.Option.parse); `delta`: the export of
    changes (domain/delta.py), checked on no records of the delta's columns, its count unknown."""
    data, wanted = _read(dataset, query)
    fmt = REGISTRY.get(export_type)
    source = env.source(data)
    if delta:
        source = pads.dataset(schema_of(source.schema).empty_table())
    scan = wanted.scan(source, data.fields)
    fmt.check(scan.fields)
    parsed = fmt.parse_options(options, scan.fields, strict)
    fmt.probe(scan.schema, scan.fields, parsed)
    return data, fmt, scan, parsed


def check_export(env: Env, out: BinaryIO, dataset: str, query: dict[str, Any], export_type: str,
                 options: dict[str, Any], delta: bool = False) -> dict[str, Any]:
    """What a new export will hold, refused now (as a 400) where the worker would fail on it:
    its record count (None for a delta: known once computed) and parsed options."""
    _, _, scan, parsed = _planned(env, dataset, query, export_type, options, strict=True, delta=delta)
    return {"records": None if delta else scan.count(), "options": parsed}


def stream_export(env: Env, out: BinaryIO, dataset: str, query: dict[str, Any], export_type: str,
                  options: dict[str, Any], head: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """A whole export written to `out`; `head` is told its content type and file name first,
    once the query and options are known to be good."""
    data, fmt, scan, parsed = _planned(env, dataset, query, export_type, options)
    return _write(out, fmt, scan.projected(fmt.fields_read(scan.fields, parsed)), parsed, data.dataset_id, head,
                  datapackage.About({"dataset_id": data.dataset_id, "title": data.title, "description": data.description,
                                     "version": data.version, "metadata": data.metadata}, query))


def _write(out: BinaryIO, fmt, scan, parsed: dict[str, Any], stem: str, head: Callable[[dict[str, Any]], None],
           about: datapackage.About | None = None) -> dict[str, Any]:
    head({"content_type": fmt.content_type(parsed), "file_name": fmt.filename(stem, parsed)})
    if parsed.get("datapackage"):  # the file first, then its zip with the descriptor
        with tempfile.TemporaryFile(prefix="exportd-package-") as inner:
            _write_file(inner, fmt, scan, parsed, stem)
            inner.seek(0)
            datapackage.pack(out, inner, fmt.filename(stem, {**parsed, "datapackage": False}), fmt, parsed, scan.fields,
                             about or datapackage.About({"dataset_id": stem}, {}))
    else:
        _write_file(out, fmt, scan, parsed, stem)
    return {}


def _write_file(out: BinaryIO, fmt: Any, scan: Any, parsed: dict[str, Any], stem: str) -> None:
    writer = fmt.open(out, scan.schema, scan.fields, parsed, name=stem)
    try:
        for batch in scan.batches():
            writer.write(batch)
        writer.close()
    except BaseException:
        writer.abort()
        raise


def catalog_page(env: Env, out: BinaryIO, entries: list[dict[str, Any]], query: dict[str, Any], limit: int,
                 offset: int, timezone: str, ids: bool) -> dict[str, Any]:
    """A page of the catalog (domain/catalog.py): with `ids`, the datasets' ids in the result
    (the web process shows each dataset); else the selected columns as the body, as records."""
    wanted = RecordQuery.from_json(query)
    table, rest, _ = catalog.source(entries, wanted)
    rest.validate(catalog.FIELDS)
    page = rest.table(table, catalog.FIELDS, limit=limit, offset=offset)
    if rest.group_by or odsql.parse_select(rest.select, catalog.FIELDS).aggregated:
        total = rest.groups(table, catalog.FIELDS, page.num_rows, limit, offset)
    else:
        total = rest.count(table, catalog.FIELDS)
    if ids:
        return {"total_count": total, "ids": page.column("dataset_id").to_pylist()}
    out.write(orjson.dumps(rows(page, fields_for(page.schema, catalog.FIELDS), timezone)))
    return {"total_count": total}


def catalog_facets(env: Env, out: BinaryIO, entries: list[dict[str, Any]], query: dict[str, Any],
                   names: list[str]) -> dict[str, Any]:
    out.write(orjson.dumps(catalog.facet_counts(entries, RecordQuery.from_json(query), names)))
    return {}


def catalog_export(env: Env, out: BinaryIO, entries: list[dict[str, Any]], query: dict[str, Any], export_type: str,
                   options: dict[str, Any], head: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """The catalog (its rows the query selects) written to `out` in one of catalog.EXPORT_FORMATS."""
    fmt = REGISTRY.get(export_type)
    if fmt.name not in catalog.EXPORT_FORMATS:
        raise Invalid(f"the catalog is exported as {', '.join(catalog.EXPORT_FORMATS)}, not {export_type!r}",
                      error_code="InvalidParameter")
    table, rest, _ = catalog.source(entries, RecordQuery.from_json(query))
    scan = rest.scan(table, catalog.FIELDS)
    parsed = fmt.parse_options(options, scan.fields)
    fmt.probe(scan.schema, scan.fields, parsed)
    return _write(out, fmt, scan, parsed, "catalog", head)


CALLS: dict[str, Callable[..., dict[str, Any]]] = {
    "records": records, "aggregates": aggregates, "facets": facets,
    "check_export": check_export, "stream_export": stream_export,
    "catalog_page": catalog_page, "catalog_facets": catalog_facets, "catalog_export": catalog_export,
}
STREAMED = frozenset({"stream_export", "catalog_export"})  # calls told `head` before their body
