"""`exportd datasets list` (the Explore catalog) and `exportd datasets load FILE` (the
management API v2, for administrators: upload the file, create the dataset — or, when its id
is taken, replace its resources —, attach the file as its resource, publish, follow the job)."""
from __future__ import annotations

import argparse
import time
from typing import Any
from urllib.parse import quote

from api.cli.client import Client
from api.cli.errors import CliError, Failed, HttpError, Interrupted
from api.cli.output import Output, table

CATALOG = "/api/v2/catalog/datasets"
MANAGEMENT = "/api/management/v2"
PAGE = 100  # the largest page both APIs give
JOB_POLL = 0.5  # seconds between looks at a publishing job (it reports progress every half second)
FINISHED = ("done", "failed", "aborted")  # domain/jobs.py
SHOWN_ERRORS = 5  # rejected rows named on stderr; --json has them all


def every(client: Client, path: str) -> list[dict[str, Any]]:
    """Every item of a {total_count, results} collection paged with limit and offset."""
    results: list[dict[str, Any]] = []
    while True:
        page = client.request("GET", path, query={"limit": PAGE, "offset": len(results)})
        results += page["results"]
        if not page["results"] or len(results) >= page["total_count"]:
            return results


def listing(client: Client, args: argparse.Namespace, out: Output) -> int:
    datasets = every(client, CATALOG)
    rows = [(d["dataset_id"], f"{d['metas']['default']['records_count']:,}", d["metas"]["default"]["title"]) for d in datasets]
    out.result(datasets, table(rows, ("DATASET", "RECORDS", "TITLE")))
    return 0


def load(client: Client, args: argparse.Namespace, out: Output) -> int:
    if not args.file.is_file():
        raise CliError(f"{args.file}: no such file")
    if not client.request("GET", "/api/v1/me").get("admin"):  # before the upload, not after it
        raise HttpError(403, "loading datasets is for administrators", "forbidden")
    bar = out.progress("uploading", "bytes")
    total = args.file.stat().st_size
    stored = client.upload(f"{MANAGEMENT}/files", args.file, on_bytes=lambda sent: bar.update(sent, total))
    bar.close()
    uid = _dataset_for(client, args, out)
    client.request("POST", f"{MANAGEMENT}/datasets/{uid}/resources", {"url": stored["url"], "title": args.file.name})
    started = client.request("PUT", f"{MANAGEMENT}/datasets/{uid}/publish")
    try:
        job = _follow(client, started["job_id"], out)
    except KeyboardInterrupt:
        raise Interrupted(f"stopped following job {started['job_id']}; publishing goes on") from None
    _report_rejected(job, out)
    if job["status"] != "done":
        reasons = [e["reason"] for e in job["errors"] if "row_number" not in e]
        raise Failed(f"publishing {args.file.name} {job['status']}" + (f": {reasons[-1]}" if reasons else ""))
    dataset = client.request("GET", f"{MANAGEMENT}/datasets/{uid}")
    out.result({**dataset, "job": job}, f"dataset {dataset['dataset_id']} ({uid}): {dataset['records_count']:,} records, "
                                         f"version {dataset['version']}")
    return 0


def _dataset_for(client: Client, args: argparse.Namespace, out: Output) -> str:
    """The uid of a new dataset, or of the existing one with this id, its resources removed
    (its metadata updated when given) so that publishing makes the file its next version."""
    metadata = {k: v for k, v in (("title", args.title), ("description", args.description)) if v}
    body: dict[str, Any] = {"metadata": metadata, **({"dataset_id": args.dataset_id} if args.dataset_id else {})}
    try:
        return client.request("POST", f"{MANAGEMENT}/datasets", body)["dataset_uid"]
    except HttpError as exc:
        if exc.error_code != "dataset_id_taken":
            raise
    uid = next((d["dataset_uid"] for d in every(client, f"{MANAGEMENT}/datasets") if d["dataset_id"] == args.dataset_id), None)
    if uid is None:
        raise CliError(f"dataset {args.dataset_id} exists but is not listed; try again")
    out.note(f"dataset {args.dataset_id} exists: {args.file.name} replaces its resources and becomes its next version")
    if metadata:
        client.request("PUT", f"{MANAGEMENT}/datasets/{uid}", {"metadata": metadata})
    for resource in client.request("GET", f"{MANAGEMENT}/datasets/{uid}/resources"):
        client.request("DELETE", f"{MANAGEMENT}/datasets/{uid}/resources/{quote(resource['resource_uid'], safe='')}")
    return uid


def _follow(client: Client, job_id: str, out: Output) -> dict[str, Any]:
    bar = out.progress("publishing", "records")
    while True:
        job = client.request("GET", f"{MANAGEMENT}/jobs/{job_id}")
        bar.update(job["progress"].get("records_done", 0))
        if job["status"] in FINISHED:
            bar.close()
            return job
        time.sleep(JOB_POLL)


def _report_rejected(job: dict[str, Any], out: Output) -> None:
    rows = [e for e in job["errors"] if "row_number" in e]
    rejected = job["progress"].get("rejected_rows", len(rows))
    if not rejected:
        return
    out.note(f"{rejected:,} rows rejected:")
    for e in rows[:SHOWN_ERRORS]:
        out.note(f"  {e['resource']} row {e['row_number']}: {e['reason']}")
    if rejected > SHOWN_ERRORS:
        out.note("  …")
