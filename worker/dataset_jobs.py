"""The management API's processing jobs on the arq queue: one function, `dataset_job`, runs the
job a record in Redis describes (domain/jobs.py): publish, unpublish, save_version,
recover_realtime_records, scratch_recovery_data, abort_processing.

A job starts only from queued (or again from processing: arq delivers a job again when its
worker died, and the job then starts over); it always ends done, failed or aborted, and hands
the dataset back (idle, or error). Building a version runs in the worker's thread pool; every
half second the job records its progress, and a requested abort stops the thread between
batches: the partial file goes, the published version stays as it was.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from typing import Any

from domain import jobs as jb
from domain import prepared
from domain.datasets import Dataset
from domain.errors import DomainError, Invalid, NotFound
from domain.fields import Field
from domain.files import FileRepo
from domain.jobs import Job, JobRepo
from domain.managed_datasets import ManagedDatasets
from domain.publishing import Build, Cancelled, check_fields, pushed_part, resource_part, union_fields, version_part, write_version
from domain.realtime import APPLIED, Realtime
from domain.storage import Storage
from domain.timeutil import now

log = logging.getLogger("exportd.worker")

PROGRESS_EVERY = 0.5  # seconds between progress reports and abort checks
ABORT_WAIT = 120  # seconds an abort_processing job waits for the job it stops


async def dataset_job(ctx: dict[str, Any], job_id: str) -> dict[str, Any]:
    repo = JobRepo(ctx["state"])
    try:
        job = await repo.get(job_id)
    except NotFound:
        return {"job": job_id, "outcome": "unknown"}
    if job.status in jb.FINISHED:
        return {"job": job_id, "outcome": f"already {job.status}"}
    if job.abort_requested:
        await repo.finish(job, jb.ABORTED, "aborted before it started")
        return {"job": job_id, "outcome": jb.ABORTED}
    if not await repo.start(job):
        return {"job": job_id, "outcome": "not startable"}
    log.info("dataset job %s (%s of %s) started", job_id, job.kind, job.dataset_uid)
    build = Build()
    reporter = asyncio.create_task(_report(repo, job_id, build))
    try:
        result = await RUNNERS[job.kind](ctx, job, build)
    except Cancelled:
        await repo.finish(job, jb.ABORTED, "aborted", progress=build.progress(), errors=build.errors)
        log.info("dataset job %s aborted", job_id)
        return {"job": job_id, "outcome": jb.ABORTED}
    except asyncio.CancelledError:
        build.cancel.set()  # the worker is stopping: arq runs the job again, from the start
        raise
    except (DomainError, ValueError, OSError) as exc:
        return await _fail(repo, job, build, getattr(exc, "message", None) or str(exc))
    except Exception as exc:
        log.exception("dataset job %s failed", job_id)
        return await _fail(repo, job, build, f"{type(exc).__name__}: {exc}")
    finally:
        reporter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporter
    await repo.finish(job, jb.DONE, progress=build.progress(), errors=build.errors, result=result)
    log.info("dataset job %s done: %s", job_id, result)
    return {"job": job_id, "outcome": jb.DONE, **result}


async def _fail(repo: JobRepo, job: Job, build: Build, reason: str) -> dict[str, Any]:
    build.cancel.set()
    await repo.finish(job, jb.FAILED, reason, progress=build.progress(), errors=[*build.errors, {"reason": reason}])
    log.info("dataset job %s failed: %s", job.job_id, reason)
    return {"job": job.job_id, "outcome": jb.FAILED, "reason": reason}


async def _report(repo: JobRepo, job_id: str, build: Build) -> None:
    while True:
        await asyncio.sleep(PROGRESS_EVERY)
        with contextlib.suppress(Exception):
            if not await repo.progress(job_id, build.progress()):
                build.cancel.set()  # abort requested
                return


def _version_key(uid: str) -> tuple[str, str]:
    version = now().strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)
    return version, f"datasets/{uid}/{version}.parquet"


async def _in_thread(ctx: dict[str, Any], build: Build, work) -> Any:
    loop = asyncio.get_running_loop()
    try:
        return await loop.run_in_executor(ctx["executor"], work)
    except BaseException:
        build.cancel.set()  # never leave the thread writing
        raise


async def _publish(ctx: dict[str, Any], job: Job, build: Build) -> dict[str, Any]:
    storage: Storage = ctx["storage"]
    datasets = ManagedDatasets(ctx["state"])
    files = FileRepo(ctx["state"], storage)
    uid = job.dataset_uid
    await datasets.by_uid(uid)
    resources = await datasets.resources(uid)
    if not resources:
        raise Invalid("the dataset has no resources to publish; add one at …/resources/")
    sources = [(r, await files.get(r.file_id)) for r in resources]
    version, key = _version_key(uid)

    def work() -> tuple[list[Field], int]:
        parts = [resource_part(f"{r.resource_uid} ({f.filename})", storage.local_path(f.key), r.type, r.params) for r, f in sources]
        fields = union_fields(parts)
        check_fields(fields)
        return fields, write_version(storage, key, parts, fields, build)

    fields, records = await _in_thread(ctx, build, work)
    return await _make_published(ctx, job, build, key, version, fields, records, {APPLIED: 0})


async def _make_published(ctx: dict[str, Any], job: Job, build: Build, key: str, version: str, fields: list[Field],
                          records: int, extra: dict[str, Any]) -> dict[str, Any]:
    """The new version becomes the published one, unless an abort came in meanwhile. Running
    exports keep reading the version they opened: versions are never overwritten."""
    if (await JobRepo(ctx["state"]).get(job.job_id)).abort_requested:
        await asyncio.to_thread(ctx["storage"].delete, key)
        raise Cancelled()
    datasets = ManagedDatasets(ctx["state"])
    await datasets.save_data(job.dataset_uid, data_key=key, records_count=records, fields=fields, version=version,
                             published=True, extra=extra)
    await datasets.record_change(job.dataset_uid, job.params.get("user", ""), job.kind,
                                 {"version": version, "records_count": records, "rejected_rows": build.rejected_count})
    settings = ctx["settings"]
    queued = await prepared.prepare(ctx["exports"], ctx["redis"], settings.queue_name, await datasets.by_uid(job.dataset_uid),
                                    settings.exports_on_publish)
    return {"version": version, "records_count": records, "rejected_rows": build.rejected_count,
            "fields": [f.as_dict() for f in fields], "exports_prepared": queued}


async def _unpublish(ctx: dict[str, Any], job: Job, build: Build) -> dict[str, Any]:
    datasets = ManagedDatasets(ctx["state"])
    await datasets.save_data(job.dataset_uid, published=False)
    await datasets.record_change(job.dataset_uid, job.params.get("user", ""), "unpublish")
    return {"published": False}


async def _save_version(ctx: dict[str, Any], job: Job, build: Build) -> dict[str, Any]:
    storage: Storage = ctx["storage"]
    datasets = ManagedDatasets(ctx["state"])
    dataset: Dataset = await datasets.by_uid(job.dataset_uid)
    if not dataset.data_key:
        raise Invalid("the dataset has no data to save yet; publish it first")
    version_uid = "sv_" + secrets.token_hex(6)
    key = f"datasets/{job.dataset_uid}/saved/{version_uid}.parquet"

    def copy() -> None:
        with open(storage.local_path(dataset.data_key), "rb") as src, storage.writing(key) as out:
            while chunk := src.read(1 << 20):
                if build.cancel.is_set():
                    raise Cancelled()
                out.write(chunk)
        build.records_done = dataset.records_count

    await _in_thread(ctx, build, copy)
    saved = {"version_uid": version_uid, "name": job.params.get("name") or f"{dataset.dataset_id} {dataset.version}",
             "created": job.created, "records_count": dataset.records_count, "version": dataset.version,
             "fields": [f.as_dict() for f in dataset.fields], "data_key": key}
    await datasets.add_version(job.dataset_uid, saved)
    await datasets.record_change(job.dataset_uid, job.params.get("user", ""), "save_version", {"version_uid": version_uid})
    return {k: v for k, v in saved.items() if k != "data_key"}


async def _recover(ctx: dict[str, Any], job: Job, build: Build) -> dict[str, Any]:
    storage: Storage = ctx["storage"]
    dataset = await ManagedDatasets(ctx["state"]).by_uid(job.dataset_uid)
    if not dataset.data_key:
        raise Invalid("publish the dataset first: pushed records take the fields of its published version")
    entries = await Realtime(ctx["state"]).entries(job.dataset_uid, int(dataset.extra.get(APPLIED, 0)))
    if not entries:
        return {"records_recovered": 0, "records_count": dataset.records_count}
    version, key = _version_key(job.dataset_uid)

    def work() -> int:
        parts = [version_part(f"version {dataset.version}", storage.local_path(dataset.data_key), dataset.fields),
                 pushed_part("realtime recovery data", entries, dataset.fields)]
        return write_version(storage, key, parts, dataset.fields, build)

    records = await _in_thread(ctx, build, work)
    result = await _make_published(ctx, job, build, key, version, dataset.fields, records, {APPLIED: entries[-1][0]})
    return {**result, "records_recovered": records - dataset.records_count}


async def _scratch(ctx: dict[str, Any], job: Job, build: Build) -> dict[str, Any]:
    scratched = await Realtime(ctx["state"]).scratch(job.dataset_uid)
    await ManagedDatasets(ctx["state"]).record_change(job.dataset_uid, job.params.get("user", ""), "scratch_recovery_data",
                                                      {"records": scratched})
    return {"records_scratched": scratched}


async def _abort(ctx: dict[str, Any], job: Job, build: Build) -> dict[str, Any]:
    """Wait for the job asked to stop to stop (it checks between batches)."""
    repo = JobRepo(ctx["state"])
    target = job.params["target_job"]
    deadline = time.monotonic() + ABORT_WAIT
    while True:
        stopped = await repo.get(target)
        if stopped.status in jb.FINISHED:
            return {"aborted_job": target, "outcome": stopped.status}
        if time.monotonic() > deadline:
            raise Invalid(f"job {target} did not stop within {ABORT_WAIT} s; it stays asked to")
        await asyncio.sleep(0.2)


RUNNERS = {
    jb.PUBLISH: _publish, jb.UNPUBLISH: _unpublish, jb.SAVE_VERSION: _save_version,
    jb.RECOVER: _recover, jb.SCRATCH: _scratch, jb.ABORT: _abort,
}
