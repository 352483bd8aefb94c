"""The export job: a thin wrapper around worker.writing with the status workflow around it.

arq delivers a job at least once; the export is written once. Each attempt is its own job
(`export:<id>:<n>`, the attempt number its argument) and starts only if the export is queued
and its previous attempt was n - 1; every later change is a compare-and-set at attempt n. While
it writes, the attempt renews a lease; the lease sweep (worker.sweep) gives an export whose
lease lapsed (its worker was killed) to a new attempt. On shutdown past the grace period the
attempt hands the export back at once. A deleted export stops it between batches.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow.dataset as pads
import redis.exceptions

from domain import exports as ex
from domain import delta, metrics, queue
from domain.datasets import Dataset, open_version
from domain.errors import DomainError, NotFound
from domain.exports import Export, ExportRepo, attempt_dir, expiry_from
from domain.query import RecordQuery
from domain.redis_clients import confirmed
from domain.sharing import digest, offer
from domain.storage import ExportTooLarge, disk_full
from domain.timeutil import now
from formats import REGISTRY, FormatNotApplicable, OptionError, UnknownFormat, datapackage
from worker.writing import Cancelled, Progress, Written, write_export

log = logging.getLogger("exportd.worker")

PROGRESS_EVERY = 0.5  # seconds between progress reports, lease renewals and cancellation checks
PERMANENT = (DomainError, OptionError, FormatNotApplicable, UnknownFormat, ValueError, TypeError)
REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, ConnectionError, OSError)


async def run_export(ctx: dict[str, Any], export_id: str, attempt: int = 1, dataset_id: str | None = None) -> dict[str, Any]:
    exports: ExportRepo = ctx["exports"]
    if dataset_id is None:  # a job queued before jobs named their dataset
        try:
            dataset_id = (await exports.get(export_id)).dataset_id
        except NotFound:
            return {"export": export_id, "outcome": "deleted"}
    # the export taken and its dataset read in one round trip's wait (a missing dataset fails
    # the export in _process, once it is this attempt's)
    started, dataset = await asyncio.gather(
        exports.start(export_id, attempt), ctx["datasets"].get(dataset_id), return_exceptions=True)
    if isinstance(started, NotFound):
        return {"export": export_id, "outcome": "deleted"}
    if isinstance(started, BaseException):
        raise started
    if started is None:
        return await _not_this_attempt(exports, export_id, attempt)
    export = started
    # the claim on a replica before the work, so that a failover does not give this attempt to a second worker
    await _confirm(ctx, export_id, "start")
    log.info("export started", extra={"export": export_id, "attempt": attempt, "format": export.export_type})
    try:
        async with asyncio.timeout(ctx["settings"].job_timeout):
            return await _process(ctx, export, attempt, dataset)
    except asyncio.CancelledError:
        await _hand_back(ctx, export, attempt)
        raise
    except Cancelled:
        log.info("export %s attempt %d: cancelled", export_id, attempt)
        return {"export": export_id, "outcome": "cancelled"}
    except TimeoutError:
        return await _fail(exports, export, attempt,
                           f"the export took longer than {ctx['settings'].job_timeout} s and was stopped; "
                           "ask for fewer records (a where filter or a select) or a lighter format")
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        # Redis is away: nothing can be recorded now. The lease lapses and the sweep gives the
        # export to a new attempt once Redis is back.
        log.warning("export %s attempt %d: Redis unavailable (%s); the lease sweep will retry it", export_id, attempt, exc)
        return {"export": export_id, "outcome": "interrupted"}
    except ExportTooLarge as exc:
        return await _fail(exports, export, attempt, str(exc))
    except OSError as exc:
        return await _fail(exports, export, attempt, _disk_detail(exc))
    except PERMANENT as exc:  # a full disk too, when a writer's own error (pyarrow's ArrowInvalid) quotes it
        detail = _disk_detail(exc) if disk_full(exc) else getattr(exc, "message", None) or str(exc)
        return await _fail(exports, export, attempt, detail)
    except Exception as exc:
        if disk_full(exc):  # a writer's own error quoting ENOSPC
            return await _fail(exports, export, attempt, _disk_detail(exc))
        log.exception("export %s attempt %d failed", export_id, attempt)
        return await _fail(exports, export, attempt,
                           f"the export could not be written ({type(exc).__name__}: {exc}); try again or ask an administrator")


async def _not_this_attempt(exports: ExportRepo, export_id: str, attempt: int) -> dict[str, Any]:
    try:
        export = await exports.get(export_id)
    except NotFound:
        return {"export": export_id, "outcome": "deleted"}
    return {"export": export_id, "outcome": f"not for attempt {attempt}: {export.status} at attempt {export.attempt}"}


async def _hand_back(ctx: dict[str, Any], export: Export, attempt: int) -> None:
    """The worker is stopping: give the export to the next attempt now rather than waiting for
    the lease to lapse. This attempt's job leaves the queue with it (arq would otherwise run it
    again, only to find the export is not its own)."""
    settings = ctx["settings"]
    own_job = queue.dead_job(settings.queue_name, ctx["job_id"]) if "job_id" in ctx else []
    with contextlib.suppress(Exception):
        if await ctx["exports"].transition(export.id, ex.QUEUED, expect=(ex.PROCESSING,), at_attempt=attempt,
                                           also=own_job):
            await queue.enqueue_export(ctx["redis"], ctx["settings"].queue_name, export.id, export.dataset_id, attempt + 1)
            log.info("export %s attempt %d handed back on shutdown", export.id, attempt)


async def _process(ctx: dict[str, Any], export: Export, attempt: int, dataset: Dataset | BaseException) -> dict[str, Any]:
    started = now()
    exports: ExportRepo = ctx["exports"]
    storage = ctx["storage"]
    if isinstance(dataset, BaseException):
        raise dataset
    if export.changes_since:  # its own fields (with _change) and version, for the file's digest
        dataset = delta.versioned(dataset, export.changes_since)
    fmt = REGISTRY.get(export.export_type)
    query = RecordQuery.from_json(export.query)
    progress = Progress()
    reporter = asyncio.create_task(_report(exports, export.id, attempt, progress))
    try:
        loop = asyncio.get_running_loop()
        plan, written = await loop.run_in_executor(
            ctx["executor"], _write, storage, dataset, query, fmt, export, attempt, progress, ctx["settings"].max_export_bytes)
    except BaseException:
        progress.cancel.set()  # a cancelled job must not leave its thread writing
        raise
    finally:
        reporter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporter
    file_name, key, options = plan.file_name, plan.key, plan.options

    finished = now()
    seconds = (finished - started).total_seconds()
    # the file offered to identical exports, and counted, with the READY transition: exactly
    # when this attempt becomes ready (it may not: deleted, or superseded by a newer attempt)
    shared = offer(digest(dataset.dataset_id, dataset.version, query.as_dict(), fmt.name, options), key, export.id, {
        "file_name": file_name, "size": written.size, "records": written.records, "skipped": written.skipped,
        "warnings": orjson.dumps(written.warnings).decode(), "sha256": written.sha256})
    try:
        ready = await exports.transition(
            export.id, ex.READY, expect=(ex.PROCESSING,), at_attempt=attempt,
            also=[*shared, *metrics.ready_counts(fmt.name, seconds, written.size, written.records)],
            file_name=file_name, size=written.size, records_done=written.records, records_total=progress.total,
            records_skipped=written.skipped, warnings=written.warnings,
            processed_date=finished, expires_at=expiry_from(finished, ctx["settings"].export_ttl), file_key=key,
            sha256=written.sha256,
        )
    except NotFound:
        ready = False
    if not ready:  # this file must not be served, and nobody else was offered it
        await asyncio.to_thread(storage.delete, attempt_dir(export.id, attempt))
        return {"export": export.id, "outcome": "discarded"}
    await _confirm(ctx, export.id, "ready")
    log.info("export ready", extra={"export": export.id, "attempt": attempt, "format": fmt.name, "records": written.records,
                                    "bytes": written.size, "duration": round(seconds, 3)})
    return {"export": export.id, "outcome": "ready", "records": written.records, "size": written.size}


@dataclass
class Plan:
    file_name: str
    key: str
    options: dict[str, Any]


def _write(storage, dataset, query: RecordQuery, fmt, export: Export, attempt: int, progress: Progress,
           max_bytes: int | None) -> tuple[Plan, Written]:
    """The blocking part, in one thread hop (each hop cost a small export a wake-up, on a busy
    machine a wait for a core): the query's scan of the dataset's version, how many records
    it holds (progress.total), the format's options on its fields, then the file."""
    with contextlib.ExitStack() as stack:
        source = open_version(storage, dataset.data_key)
        if export.changes_since:  # the delta, computed into a file of its own for this attempt
            changes = delta.DeltaFile(str(storage.local_path(export.base_key)), str(storage.local_path(dataset.data_key)),
                                      delta.key_fields(dataset))
            source = pads.dataset(stack.enter_context(changes), format="parquet")
        scan = query.scan(source, dataset.fields)
        progress.total = scan.count()
        fmt.check(scan.fields)
        options = fmt.parse_options(export.options, scan.fields)
        scan = scan.projected(fmt.fields_read(scan.fields, options))
        file_name = fmt.filename(dataset.dataset_id, options)
        key = f"{attempt_dir(export.id, attempt)}/{file_name}"
        written = write_export(storage, key, f"{export.id}~{attempt}", scan, fmt, options, progress, max_bytes,
                               about=about(dataset, export), member=fmt.filename(dataset.dataset_id, {**options, "datapackage": False}),
                               name=dataset.dataset_id)
    return Plan(file_name, key, options), written


def about(dataset: Dataset, export: Export) -> datapackage.About:
    """What a data package of this export says beside its file (formats/datapackage.py)."""
    source = f"{export.origin}/api/v2/catalog/datasets/{dataset.dataset_id}" if export.origin else export.resource_href
    return datapackage.About({"dataset_id": dataset.dataset_id, "title": dataset.title, "description": dataset.description,
                              "version": dataset.version, "source": source, "metadata": dataset.metadata}, export.query)


async def _confirm(ctx: dict[str, Any], export_id: str, change: str) -> None:
    """Wait until the replicas asked for hold the change (EXPORTD_REDIS_REPLICAS). Unconfirmed,
    it is only logged: should the primary then fail, the new one has the export processing
    with a lease nobody renews, and the lease sweep runs it again."""
    settings = ctx["settings"]
    with contextlib.suppress(*REDIS_DOWN):
        if await confirmed(ctx["state"], settings.redis_replicas, settings.redis_wait_ms):
            return
    log.warning("export %s: no replica confirmed its %s within %d ms", export_id, change, settings.redis_wait_ms)


async def _report(exports: ExportRepo, export_id: str, attempt: int, progress: Progress) -> None:
    """Every half second: write the progress (with the first report once it is known, the
    records to write: an export done sooner tells it as it becomes ready, a round trip saved),
    and stop the writer if the export was deleted or another attempt took it over."""
    total_told = False
    while True:
        await asyncio.sleep(PROGRESS_EVERY)
        told = {} if total_told or progress.total is None else {"records_total": progress.total}
        try:
            still_ours = await exports.update(export_id, expect=(ex.PROCESSING,), at_attempt=attempt,
                                              renew_lease=True, records_done=progress.done, **told)
        except REDIS_DOWN:
            continue  # keep writing; the final transition will tell
        total_told = total_told or bool(told)
        if not still_ours:
            progress.cancel.set()
            return


async def _fail(exports: ExportRepo, export: Export, attempt: int, detail: str) -> dict[str, Any]:
    """Fail the attempt with `detail`; an export deleted (or taken over) meanwhile is not
    failed but discarded: what went wrong may have been its own deletion (its files gone
    from under the writer)."""
    try:
        failed = await exports.transition(export.id, ex.FAILED, expect=(ex.PROCESSING,), at_attempt=attempt,
                                          detail=detail, processed_date=now())
    except NotFound:
        failed = False
    if not failed:
        log.info("export %s attempt %d discarded (%s)", export.id, attempt, detail)
        return {"export": export.id, "outcome": "discarded", "detail": detail}
    log.info("export failed: %s", detail, extra={"export": export.id, "attempt": attempt, "format": export.export_type})
    return {"export": export.id, "outcome": "failed", "detail": detail}


def _disk_detail(exc: Exception) -> str:
    if disk_full(exc):
        return "the export ran out of disk space on the worker; ask an administrator to free space, then try again"
    return f"the export file could not be written: {getattr(exc, 'strerror', None) or exc}"
