"""The catalog as records: one row of metadata a dataset, queried with ODSQL like a dataset's
records (select, where, refine, exclude, group_by, order_by), counted by facets, exported in
the formats the platform offers for its catalog. Run in a query process, over the rows the
web process sends (the datasets the caller may see).

Lists (keyword, theme, features) are text in the table, their values joined with ", ", so
that where, select and exports read them as any text; refine, exclude and the facets take
them value by value, as the platform does."""
from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.dataset as pads

from domain.datasets import Dataset
from domain.errors import Invalid
from domain.fields import Field
from domain.query import RecordQuery

LISTS = ("keyword", "theme", "features")
FIELDS = [
    Field("dataset_id", "text", "Dataset identifier"),
    Field("dataset_uid", "text", "Dataset uid"),
    Field("title", "text", "Title"),
    Field("description", "text", "Description"),
    Field("publisher", "text", "Publisher"),
    Field("license", "text", "License"),
    Field("language", "text", "Language"),
    Field("keyword", "text", "Keywords"),
    Field("theme", "text", "Themes"),
    Field("features", "text", "Features"),
    Field("records_count", "int", "Number of records"),
    Field("modified", "text", "Last modified"),
    Field("visibility", "text", "Visibility"),
]
FACETS = ("features", "theme", "keyword", "publisher", "license", "language")
EXPORT_FORMATS = ("csv", "json", "xlsx")  # of the platform's catalog exports, those a format writer here makes
LIST_SEPARATOR = ", "


def features(dataset: Dataset) -> list[str]:
    """What the platform says a dataset offers: analyze always, geo with a geometry, timeserie with a date."""
    types = {f.type for f in dataset.fields}
    return (["analyze"] + (["geo"] if types & {"geo_point_2d", "geo_shape"} else [])
            + (["timeserie"] if types & {"date", "datetime"} else []))


def row(dataset: Dataset) -> dict[str, Any]:
    """A dataset's catalog row, lists as lists (the table joins them)."""
    meta = dataset.metadata
    return {
        "dataset_id": dataset.dataset_id, "dataset_uid": dataset.dataset_uid, "title": dataset.title,
        "description": dataset.description, "publisher": meta.get("publisher"), "license": meta.get("license"),
        "language": meta.get("language"), "keyword": list(meta.get("keywords") or []), "theme": list(meta.get("theme") or []),
        "features": features(dataset), "records_count": dataset.records_count, "modified": dataset.modified,
        "visibility": dataset.visibility,
    }


def _table(rows: list[dict[str, Any]]) -> pa.Table:
    columns = {}
    for f in FIELDS:
        values = [r[f.name] for r in rows]
        if f.name in LISTS:
            values = [LIST_SEPARATOR.join(v) or None for v in values]
        columns[f.name] = pa.array(values, pa.int64() if f.type == "int" else pa.string())
    return pa.table(columns)


def _by_value(texts: Iterable[str]) -> list[tuple[str, str]]:
    """(facet, value) of the refine or exclude texts on a list facet."""
    out = []
    for text in texts:
        facet, sep, value = text.partition(":")
        if sep and facet.strip() in LISTS:
            out.append((facet.strip(), value))
    return out


def select_rows(rows: list[dict[str, Any]], query: RecordQuery) -> tuple[list[dict[str, Any]], RecordQuery]:
    """The rows the list facets' refine and exclude keep, and the query left for ODSQL."""
    refine, exclude = _by_value(query.refine), _by_value(query.exclude)
    if not refine and not exclude:
        return rows, query
    kept = [r for r in rows if all(v in r[f] for f, v in refine) and not any(v in r[f] for f, v in exclude)]
    on_lists = {f"{f}:{v}" for f, v in refine + exclude}
    rest = dataclasses.replace(query, refine=tuple(t for t in query.refine if t not in on_lists),
                               exclude=tuple(t for t in query.exclude if t not in on_lists))
    return kept, rest


def source(rows: list[dict[str, Any]], query: RecordQuery) -> tuple[pads.Dataset, RecordQuery, list[dict[str, Any]]]:
    """The catalog table of `rows` after the list facets' filters, the query left, and the rows kept."""
    kept, rest = select_rows(rows, query)
    return pads.dataset(_table(kept)), rest, kept


def facet_counts(rows: list[dict[str, Any]], query: RecordQuery, names: list[str]) -> list[dict[str, Any]]:
    """Each facet's values with the number of matching datasets holding them, most frequent first."""
    unknown = [n for n in names if n not in FACETS]
    if unknown:
        raise Invalid(f"unknown catalog facet(s): {', '.join(unknown)}; facets: {', '.join(FACETS)}",
                      error_code="InvalidParameter")
    table, rest, kept = source(rows, query)
    chosen = RecordQuery(where=rest.where, refine=rest.refine, exclude=rest.exclude, select="dataset_id")
    matching = set(chosen.table(table, FIELDS).column("dataset_id").to_pylist())
    found = []
    for name in names:
        counts: Counter[str] = Counter()
        for r in kept:
            if r["dataset_id"] in matching:
                values = r[name] if name in LISTS else [r[name]]
                counts.update(v for v in values if v)
        found.append({"name": name, "facets": [{"name": v, "value": v, "count": n, "state": "displayed"}
                                               for v, n in sorted(counts.items(), key=lambda item: (-item[1], item[0]))]})
    return found
