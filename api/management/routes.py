"""The management API's routes under /api/management/v2, each with its OpenAPI operation; every
path answers with and without a trailing slash (the platform's examples use both), and the
push endpoint sits at /api/push/1.0. api.routes adds them to the one route table."""
from __future__ import annotations

from typing import Any

from api.management import alternative_exports, community, datasets, files, realtime, resources
from domain.metadata import TEMPLATES

PREFIX = "/api/management/v2"
TAG = ["Management API v2"]
SECURITY = [{"BasicAuth": []}, {"ApiKey": []}, {"OsdiToken": []}]
ERR = {"$ref": "#/components/responses/Error"}
AUTH_ERRORS = {"401": ERR, "403": ERR}


def path_param(name: str, description: str, pattern: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if pattern:
        schema["pattern"] = pattern
    return {"name": name, "in": "path", "required": True, "description": description, "schema": schema}


UID = path_param("dataset_uid", "The dataset's uid (da_…), fixed for life.", "^da_[0-9a-f]+$")
JOB_ID = path_param("job_id", "40 hexadecimal characters.", "^[0-9a-f]{40}$")
FILE_ID = path_param("file_id", "32 hexadecimal characters.", "^[0-9a-f]{32}$")
RESOURCE_UID = path_param("resource_uid", "The resource's uid (re_…).")
EXPORT_UID = path_param("export_uid", "The alternative export's uid (ae_…).", "^ae_[0-9a-f]+$")
PAGE = [{"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 100, "default": 20}},
        {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "default": 0}}]
EXPAND = {"name": "expand", "in": "query", "description": "Comma-separated: status, changes.",
          "schema": {"type": "string"}}
JSON = "application/json"


def body(properties: dict[str, Any], required: list[str] | None = None, description: str = "") -> dict[str, Any]:
    return {"required": bool(required), "description": description,
            "content": {JSON: {"schema": {"type": "object", "properties": properties, "required": required or []}}}}


def ok(description: str, status: str = "200") -> dict[str, Any]:
    return {status: {"description": description}}


METADATA = {"type": "object", "description": "Templates, as the platform's clients send them: {TEMPLATE: {NAME: VALUE}}, "
            "each value plain or {\"value\": …}; " + "; ".join(
                f"{template}: {', '.join(names)}" for template, names in TEMPLATES.items())
            + ". Lists are lists of strings (or one comma-separated string), the rest strings. Or, as a shorthand, the "
            "default template's names flat ({\"title\": …, \"keywords\": […]}). Answered in the template form "
            "({TEMPLATE: {NAME: {\"value\": …}}}); merged on update, template by template. An unknown template or "
            "name is a 400 naming it.",
            "additionalProperties": {"type": "object"}}
DATASET_BODY = body({"dataset_id": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,99}$"}, "metadata": METADATA})
JOB = {"200": {"description": '{"job_id": "<40 hex>"}; poll it at /api/management/v2/jobs/{job_id}.',
               "content": {JSON: {"schema": {"type": "object", "properties": {"job_id": {"type": "string"}}}}}}}


def job_operation(summary: str, extra: dict[str, Any] | None = None, errors: tuple[str, ...] = ("404", "409")) -> dict[str, Any]:
    return {"summary": summary, "parameters": [UID], **(extra or {}),
            "responses": {**JOB, **AUTH_ERRORS, **{e: ERR for e in errors}}}


ENDPOINTS: list[tuple[str, str, Any, str, dict[str, Any]]] = [
    # datasets
    ("POST", "/datasets", datasets.create, "mgmt-datasets-create", {
        "summary": "Create a dataset (unpublished): dataset_id chosen or generated, dataset_uid da_… fixed for life.",
        "requestBody": DATASET_BODY, "responses": {**ok("The dataset, status expanded.", "201"), "400": ERR, "409": ERR, **AUTH_ERRORS}}),
    ("GET", "/datasets", datasets.collection, "mgmt-datasets-list", {
        "summary": "Every dataset, paged: {total_count, limit, offset, results}.", "parameters": [*PAGE, EXPAND],
        "responses": {**ok("A page of datasets."), "400": ERR, **AUTH_ERRORS}}),
    ("GET", "/datasets/{dataset_uid}", datasets.read, "mgmt-dataset", {
        "summary": "One dataset; ?expand=status,changes adds its processing status and its history.",
        "parameters": [UID, EXPAND], "responses": {**ok("The dataset."), "400": ERR, "404": ERR, **AUTH_ERRORS}}),
    ("PUT", "/datasets/{dataset_uid}", datasets.update, "mgmt-dataset-update", {
        "summary": "Update metadata (merged) and, while unpublished, the dataset_id (409 when published).",
        "parameters": [UID], "requestBody": DATASET_BODY,
        "responses": {**ok("The dataset."), "400": ERR, "404": ERR, "409": ERR, **AUTH_ERRORS}}),
    ("DELETE", "/datasets/{dataset_uid}", datasets.delete, "mgmt-dataset-delete", {
        "summary": "Delete the dataset, its resources, versions, alternative exports and recovery data (409 while a job runs).",
        "parameters": [UID], "responses": {**ok("Deleted."), "404": ERR, "409": ERR, **AUTH_ERRORS}}),
    # processing
    ("PUT", "/datasets/{dataset_uid}/publish", datasets.publish, "mgmt-publish", job_operation(
        "Publish: read the resources, write a new version, make it the published one. Rows that cannot be read are "
        "counted and listed in the job's errors with their row numbers.", errors=("400", "404", "409"))),
    ("PUT", "/datasets/{dataset_uid}/unpublish", datasets.unpublish, "mgmt-unpublish", job_operation(
        "Unpublish: the dataset leaves the Explore API and its catalog; the dataset and its versions stay.")),
    ("PUT", "/datasets/{dataset_uid}/abort_processing", datasets.abort_processing, "mgmt-abort", job_operation(
        "Stop the running job between batches; the published records stay. 409 when nothing runs.")),
    ("PUT", "/datasets/{dataset_uid}/save_version", datasets.save_version, "mgmt-save-version", job_operation(
        "Keep the current data as a named version (listed at …/versions/ and the Explore API's snapshots).",
        {"requestBody": body({"name": {"type": "string"}}, description="Optional.")}, errors=("400", "404", "409"))),
    ("PUT", "/datasets/{dataset_uid}/recover_realtime_records", datasets.recover_realtime_records, "mgmt-recover", job_operation(
        "Write a new version: the published records plus the pushed realtime records not yet in it.", errors=("400", "404", "409"))),
    ("PUT", "/datasets/{dataset_uid}/scratch_recovery_data", datasets.scratch_recovery_data, "mgmt-scratch", job_operation(
        "Delete the dataset's realtime recovery data for good.")),
    ("GET", "/datasets/{dataset_uid}/versions", datasets.versions, "mgmt-versions", {
        "summary": "The dataset's saved versions.", "parameters": [UID], "responses": {**ok("A list."), "404": ERR, **AUTH_ERRORS}}),
    ("GET", "/jobs/{job_id}", datasets.job, "mgmt-job", {
        "summary": "A processing job: type, status (queued, processing, done, failed, aborted), progress, errors "
                   "(rejected rows: resource, row_number, reason), timestamps, result.",
        "parameters": [JOB_ID], "responses": {**ok("The job."), "404": ERR, **AUTH_ERRORS}}),
    # resources
    ("POST", "/datasets/{dataset_uid}/resources", resources.create, "mgmt-resources-create", {
        "summary": "Attach an uploaded file as a resource: url (odsfile://…), type (csv, geojson, parquet, xlsx; sniffed when "
                   "absent), params (delimiter, encoding, sheet, header_row, lat_field, lon_field, fields: {name: type}).",
        "parameters": [UID], "requestBody": body({"url": {"type": "string"}, "type": {"type": "string"},
                                                  "params": {"type": "object"}, "title": {"type": "string"}}, ["url"]),
        "responses": {**ok("The resource.", "201"), "400": ERR, "404": ERR, **AUTH_ERRORS}}),
    ("GET", "/datasets/{dataset_uid}/resources", resources.collection, "mgmt-resources", {
        "summary": "The dataset's resources.", "parameters": [UID], "responses": {**ok("A list."), "404": ERR, **AUTH_ERRORS}}),
    ("GET", "/datasets/{dataset_uid}/resources/{resource_uid}", resources.read, "mgmt-resource", {
        "summary": "One resource.", "parameters": [UID, RESOURCE_UID], "responses": {**ok("The resource."), "404": ERR, **AUTH_ERRORS}}),
    ("DELETE", "/datasets/{dataset_uid}/resources/{resource_uid}", resources.delete, "mgmt-resource-delete", {
        "summary": "Detach a resource (the next publish goes without it).", "parameters": [UID, RESOURCE_UID],
        "responses": {**ok("Deleted."), "404": ERR, **AUTH_ERRORS}}),
    # realtime
    ("POST", "/datasets/{dataset_uid}/push_key", realtime.new_push_key, "mgmt-push-key", {
        "summary": "A new push key for the dataset (shown once; the previous one stops working), and its push URL.",
        "parameters": [UID], "responses": {**ok("{push_key, push_url}", "201"), "404": ERR, **AUTH_ERRORS}}),
    ("GET", "/datasets/{dataset_uid}/recovery_data", realtime.recovery_data, "mgmt-recovery-data", {
        "summary": "How many pushed records the recovery data holds.", "parameters": [UID],
        "responses": {**ok("{records, applied_through}"), "404": ERR, **AUTH_ERRORS}}),
    # alternative exports
    ("GET", "/datasets/{dataset_uid}/alternative_exports", alternative_exports.collection, "mgmt-altexports", {
        "summary": "The dataset's alternative exports: [{export_uid, url}].", "parameters": [UID],
        "responses": {**ok("A list."), "404": ERR, **AUTH_ERRORS}}),
    ("POST", "/datasets/{dataset_uid}/alternative_exports", alternative_exports.create, "mgmt-altexports-create", {
        "summary": "Attach an uploaded file: {\"url\": \"odsfile://NAME\"}. Other schemes, absolute paths and .. answer 400.",
        "parameters": [UID], "requestBody": body({"url": {"type": "string"}}, ["url"]),
        "responses": {**ok("The alternative export.", "201"), "400": ERR, "404": ERR, **AUTH_ERRORS}}),
    ("GET", "/datasets/{dataset_uid}/alternative_exports/{export_uid}", alternative_exports.read, "mgmt-altexport", {
        "summary": "One alternative export.", "parameters": [UID, EXPORT_UID],
        "responses": {**ok("The alternative export."), "404": ERR, **AUTH_ERRORS}}),
    ("DELETE", "/datasets/{dataset_uid}/alternative_exports/{export_uid}", alternative_exports.delete, "mgmt-altexport-delete", {
        "summary": "Detach an alternative export (the uploaded file stays).", "parameters": [UID, EXPORT_UID],
        "responses": {**ok("Deleted."), "404": ERR, **AUTH_ERRORS}}),
    ("GET", "/datasets/{dataset_uid}/download_alternative_export/{export_uid}", alternative_exports.download, "mgmt-altexport-download", {
        "summary": "The attached file, with its name and type; Range supported.", "parameters": [UID, EXPORT_UID],
        "responses": {**ok("The file."), "206": {"description": "Part of the file."}, "404": ERR, "416": ERR, **AUTH_ERRORS}}),
    # reuses and feedback (exportd extensions: the seeds do not say how reuses are added)
    ("POST", "/datasets/{dataset_uid}/reuses", community.add_reuse, "mgmt-reuses-add", {
        "summary": "Add a reuse of the dataset (title, url; description, type, image, author); the Explore API lists it.",
        "parameters": [UID],
        "requestBody": body({k: {"type": "string"} for k in ("title", "url", "description", "type", "image", "author")},
                            ["title", "url"]),
        "responses": {**ok("The reuse.", "201"), "400": ERR, "404": ERR, **AUTH_ERRORS}}),
    ("GET", "/datasets/{dataset_uid}/reuses", community.list_reuses, "mgmt-reuses", {
        "summary": "The dataset's reuses.", "parameters": [UID],
        "responses": {**ok("{total_count, results}"), "404": ERR, **AUTH_ERRORS}}),
    ("GET", "/datasets/{dataset_uid}/feedback", community.list_feedback, "mgmt-feedback", {
        "summary": "Feedback sent to the publisher through the Explore API, oldest first.", "parameters": [UID],
        "responses": {**ok("{total_count, results}"), "404": ERR, **AUTH_ERRORS}}),
    # files
    ("POST", "/files", files.upload, "mgmt-files-upload", {
        "summary": "Upload a file (multipart/form-data field `file`), streamed to disk; 413 past EXPORTD_MAX_UPLOAD_BYTES, "
                   "507 (insufficient_storage, nothing kept) when the disk fills.",
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
            "type": "object", "properties": {"file": {"type": "string", "format": "binary"}}, "required": ["file"]}}}},
        "responses": {**ok('{file_id, url: "odsfile://…", filename, properties: {mimetype, size}, created}', "201"),
                      "400": ERR, "413": ERR, "507": ERR, **AUTH_ERRORS}}),
    ("GET", "/files", files.collection, "mgmt-files", {
        "summary": "Uploaded files, newest first, paged.", "parameters": PAGE,
        "responses": {**ok("A page of files."), "400": ERR, **AUTH_ERRORS}}),
    ("GET", "/files/{file_id}", files.read, "mgmt-file", {
        "summary": "One uploaded file.", "parameters": [FILE_ID], "responses": {**ok("The file object."), "404": ERR, **AUTH_ERRORS}}),
    ("GET", "/files/download_file/{file_id}", files.download, "mgmt-file-download", {
        "summary": "Download an uploaded file; Range supported.", "parameters": [FILE_ID],
        "responses": {**ok("The file."), "206": {"description": "Part of the file."}, "404": ERR, **AUTH_ERRORS}}),
]

PUSH = ("POST", "/api/push/1.0/{dataset_uid}/push", realtime.push, "realtime-push", {
    "summary": "Push records to a realtime dataset: one JSON object or an array (≤ 1000), with ?pushkey= (or a Pushkey "
               "header). They are kept as recovery data and reach the published version with recover_realtime_records.",
    "tags": ["Realtime push"], "security": [],
    "parameters": [UID, {"name": "pushkey", "in": "query", "required": False, "schema": {"type": "string"}}],
    "requestBody": {"required": True, "content": {JSON: {"schema": {"oneOf": [{"type": "object"}, {"type": "array"}]}}}},
    "responses": {**ok("{status, records}"), "400": ERR, "401": ERR},
})


def routes() -> list[tuple[str, str, Any, str, dict[str, Any]]]:
    """(method, path, handler, name, operation) for every served path."""
    out = []
    for method, suffix, handler, name, operation in ENDPOINTS:
        operation = {**operation, "tags": TAG, "security": SECURITY}
        out.append((method, f"{PREFIX}{suffix}", handler, name, operation))
        out.append((method, f"{PREFIX}{suffix}/", handler, f"{name}-slash", operation))
    out.append((PUSH[0], PUSH[1], PUSH[2], PUSH[3], PUSH[4]))
    return out


ROUTES = routes()
