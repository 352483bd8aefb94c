"""The Explore API's routes: each endpoint under /api/v2/catalog and /api/explore/v2.1/catalog,
with and without a trailing slash (OpenDataSoft's clients use both; no redirects)."""
from __future__ import annotations

from typing import Any

from api.explore import attached, catalog, exports, records, snapshots
from domain.catalog import EXPORT_FORMATS as CATALOG_EXPORTS
from domain.catalog import FACETS as CATALOG_FACETS
from domain.catalog import FIELDS as CATALOG_FIELDS
from domain.query import MAX_LIMIT
from formats import REGISTRY

PREFIXES = ("/api/v2/catalog", "/api/explore/v2.1/catalog")
TAG = ["Explore API v2"]
ERR = {"$ref": "#/components/responses/Error"}
DATASET_ID = {"name": "dataset_id", "in": "path", "required": True, "schema": {"type": "string"}}
KEY = [{}, {"ApiKey": []}, {"ApiKeyQuery": []}]


def q(name: str, description: str, kind: str = "string", **extra: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": {"type": kind, **extra}}


WHERE = q("where", "ODSQL filter; may be repeated (ANDed).")
SELECT = q("select", "ODSQL select: fields, `*`, aliases, aggregates.")
ORDER_BY = q("order_by", "ODSQL order: `field [asc|desc], …`.")
GROUP_BY = q("group_by", "ODSQL group by: fields and date parts such as year(date_field).")
REFINE = q("refine", "FACET:VALUE; keeps matching records; may be repeated.")
EXCLUDE = q("exclude", "FACET:VALUE; drops matching records; may be repeated.")
TIMEZONE = q("timezone", "Time zone datetimes are rendered in (default UTC).")
LIMIT = q("limit", "Records per page (≤ 100).", "integer", minimum=0, maximum=100, default=10)
OFFSET = q("offset", "First record (offset + limit < 10000).", "integer", minimum=0, default=0)
RECORDS_LIMIT = q("limit", "Records per page (≤ 100); with group_by, groups (≤ 20000).", "integer",
                  minimum=0, maximum=20000, default=10)
RECORDS_OFFSET = q("offset", "First record (offset + limit < 10000); with group_by, offset + limit ≤ 20000.",
                   "integer", minimum=0, maximum=20000, default=0)
QUERY = [SELECT, WHERE, ORDER_BY, GROUP_BY, REFINE, EXCLUDE]
# A query runs in a query process with budgets (api/isolation): what a call past one answers.
BUDGETED = {"400": {"$ref": "#/components/responses/Error", "description": "Bad input; ODSQLError past the term "
                    "limit; query_too_large past the memory budget."},
            "500": {"$ref": "#/components/responses/Error", "description": "query_failed: the query's process died."},
            "503": {"$ref": "#/components/responses/Error", "description": "query_timeout past the time budget, busy "
                    "while heavy queries fill this server (Retry-After), or Redis unavailable."}}

ENDPOINTS: list[tuple[str, str, Any, str, dict[str, Any]]] = [
    ("GET", "/datasets", catalog.datasets, "explore-datasets", {
        "summary": "The catalog: datasets, paged, with select, where, refine, exclude, group_by and order_by over their "
                   f"metadata ({', '.join(f.name for f in CATALOG_FIELDS)}), checked as a dataset's records are "
                   "(an unknown field is a 400 ODSQLError). Without select or group_by each result is the dataset; "
                   "with them, the selected columns (total_count then counts groups when the query aggregates).",
        "parameters": [*QUERY, RECORDS_LIMIT, RECORDS_OFFSET],
        "responses": {"200": {"description": "{total_count, links, results}"}, **BUDGETED}}),
    ("GET", "/facets", catalog.facets, "explore-catalog-facets", {
        "summary": f"The catalog's facets ({', '.join(CATALOG_FACETS)}): how many datasets hold each value, most "
                   "frequent first; keyword, theme and features value by value.",
        "parameters": [WHERE, REFINE, EXCLUDE, q("facet", "A facet to count; may be repeated (default: all).",
                                                 enum=list(CATALOG_FACETS))],
        "responses": {"200": {"description": "{links, facets}"}, **BUDGETED}}),
    ("GET", "/exports/{format}", catalog.export, "explore-catalog-export", {
        "summary": "The catalog (the datasets the query selects, one row of metadata each) as a file, streamed.",
        "parameters": [{"name": "format", "in": "path", "required": True, "schema": {"type": "string", "enum": list(CATALOG_EXPORTS)}},
                       *QUERY, q("limit", "Datasets (-1: all).", "integer", minimum=-1, maximum=MAX_LIMIT, default=-1),
                       q("(format options)", "The format's options; see x-formats.")],
        "responses": {"200": {"description": "The file, streamed."}, **BUDGETED}}),
    ("GET", "/datasets/{dataset_id}", catalog.dataset, "explore-dataset", {
        "summary": "One dataset: metadata, fields, and links to its endpoints.",
        "parameters": [DATASET_ID], "responses": {"200": {"description": "The dataset."}, "404": ERR}}),
    ("GET", "/datasets/{dataset_id}/records", records.records, "explore-records", {
        "summary": "Records matching an ODSQL query, {total_count, links, results}; when the query aggregates, "
                   "total_count counts groups (1 for a plain aggregate) and offset/limit page through them.",
        "parameters": [DATASET_ID, *QUERY, RECORDS_LIMIT, RECORDS_OFFSET, TIMEZONE],
        "responses": {"200": {"description": "A page of records."}, **BUDGETED, "404": ERR}}),
    ("GET", "/datasets/{dataset_id}/records/{record_id}", records.record, "explore-record", {
        "summary": "One record by its id (its position in the published version).",
        "parameters": [DATASET_ID, {"name": "record_id", "in": "path", "required": True, "schema": {"type": "string"}}, TIMEZONE],
        "responses": {"200": {"description": "The record."}, "400": ERR, "404": ERR}}),
    ("GET", "/datasets/{dataset_id}/aggregates", records.aggregates, "explore-aggregates", {
        "summary": "Aggregations (count, sum, avg, min, max) over records, grouped by group_by.",
        "parameters": [DATASET_ID, *QUERY,
                       q("limit", "Groups to return (-1: as many as 20000 - offset allows).", "integer",
                         minimum=-1, maximum=20000, default=-1),
                       q("offset", "First group (offset + limit ≤ 20000).", "integer", minimum=0, maximum=20000, default=0),
                       TIMEZONE],
        "responses": {"200": {"description": "{results}: without order_by, groups in key order."}, **BUDGETED, "404": ERR}}),
    ("GET", "/datasets/{dataset_id}/facets", records.facets, "explore-facets", {
        "summary": "Value counts of text, boolean and date (by year) fields.",
        "parameters": [DATASET_ID, WHERE, REFINE, EXCLUDE, q("facet", "A field to count; may be repeated.")],
        "responses": {"200": {"description": "{facets}"}, **BUDGETED, "404": ERR}}),
    ("GET", "/datasets/{dataset_id}/exports", exports.formats, "explore-exports", {
        "summary": "The export formats that fit this dataset.",
        "parameters": [DATASET_ID], "responses": {"200": {"description": "{links}"}, "404": ERR}}),
    ("GET", "/datasets/{dataset_id}/exports/{format}", exports.export, "explore-export", {
        "summary": "Stream the dataset (or a query over it) as a file in this format.",
        "parameters": [DATASET_ID,
                       {"name": "format", "in": "path", "required": True, "schema": {"type": "string", "enum": REGISTRY.all_names()}},
                       *QUERY, q("limit", "Records (-1: all).", "integer", minimum=-1, maximum=MAX_LIMIT, default=-1),
                       q("timezone", "Common option."), q("use_labels", "Common option.", "boolean"),
                       q("compressed", "Common option.", "boolean"),
                       q("epsg", "Common option: geojson, shp, fgb, gpkg and fgdb reproject; other formats take 4326 only.",
                         "integer", minimum=1024, maximum=999_999),
                       q("(format options)", "Each format's own options; see x-formats.")],
        "responses": {"200": {"description": "The file, streamed; an error after its first bytes cuts it short."},
                      **BUDGETED, "404": ERR}}),
    ("GET", "/datasets/{dataset_id}/attachments", attached.attachments, "explore-attachments", {
        "summary": "Files attached to the dataset (the management API's alternative exports).",
        "parameters": [DATASET_ID], "responses": {"200": {"description": "{links, attachments}"}, "404": ERR}}),
    ("GET", "/datasets/{dataset_id}/attachments/{attachment_id}", attached.attachment, "explore-attachment", {
        "summary": "Download an attachment.",
        "parameters": [DATASET_ID, {"name": "attachment_id", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {"200": {"description": "The file."}, "404": ERR, "410": ERR}}),
    ("GET", "/datasets/{dataset_id}/files/{file_id}", attached.file, "explore-file", {
        "summary": "Download a file of the dataset (of one of its resources or attachments).",
        "parameters": [DATASET_ID, {"name": "file_id", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {"200": {"description": "The file."}, "404": ERR, "410": ERR}}),
    ("GET", "/datasets/{dataset_id}/reuses", attached.reuses, "explore-reuses", {
        "summary": "Reuses of the dataset (added by administrators with the management API).",
        "parameters": [DATASET_ID], "responses": {"200": {"description": "{total_count, results}"}, "404": ERR}}),
    ("GET", "/datasets/{dataset_id}/reuses/{reuse_id}", attached.reuse, "explore-reuse", {
        "summary": "One reuse.",
        "parameters": [DATASET_ID, {"name": "reuse_id", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {"200": {"description": "The reuse."}, "404": ERR}}),
    ("PUT", "/datasets/{dataset_id}/feedback", attached.feedback, "explore-feedback", {
        "summary": "Send feedback (title, message, contact) to the dataset's publisher.",
        "parameters": [DATASET_ID],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["title", "message"],
            "properties": {"title": {"type": "string"}, "message": {"type": "string"}, "contact": {"type": "string"}}}}}},
        "responses": {"201": {"description": "The stored entry."}, "400": ERR, "404": ERR}}),
    ("GET", "/datasets/{dataset_id}/snapshots/{snapshot_id}/exports/{format}", exports.snapshot_export, "explore-snapshot-export", {
        "summary": "Stream a saved version (snapshot) of the dataset in a format, with the same parameters as the dataset's exports.",
        "parameters": [DATASET_ID, {"name": "snapshot_id", "in": "path", "required": True, "schema": {"type": "string"}},
                       {"name": "format", "in": "path", "required": True, "schema": {"type": "string", "enum": REGISTRY.all_names()}},
                       *QUERY],
        "responses": {"200": {"description": "The file, streamed; an error after its first bytes cuts it short."},
                      **BUDGETED, "404": ERR}}),
    ("GET", "/datasets/{dataset_id}/snapshots", snapshots.snapshots, "explore-snapshots", {
        "summary": "The dataset's saved versions (management API save_version), oldest first.",
        "parameters": [DATASET_ID], "responses": {"200": {"description": "{total_count, links, results}"}, "404": ERR}}),
    ("GET", "/datasets/{dataset_id}/versions", snapshots.versions, "explore-versions", {
        "summary": "The versions the dataset was published as, oldest first (an exportd extension): each a possible "
                   "changes_since of a delta export.",
        "parameters": [DATASET_ID], "responses": {"200": {"description": "{total_count, links, results: [{version, "
                                                                         "published, records_count, current}]}"}, "404": ERR}}),
]


def paths(suffix: str) -> list[str]:
    return [f"{prefix}{suffix}{slash}" for prefix in PREFIXES for slash in ("", "/")]
