"""The export job: a thin wrapper around worker.writing with the status workflow around it.

It runs at least once (arq's promise) and acts once: it starts only from queued (or from
processing, when a previous attempt died), bumps the attempt, and every later state change is
conditional on still being at that attempt. A deleted export stops it between batches.
"""
from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
from typing import Any

import redis.exceptions
from arq import Retry

from domain import exports as ex
from domain.errors import DomainError, NotFound
from domain.exports import Export, ExportRepo, attempt_dir, expiry_from
from domain.query import RecordQuery, Scan
from domain.timeutil import now
from formats import REGISTRY, FormatNotApplicable, OptionError, UnknownFormat
from worker.writing import Cancelled, Progress, write_export

log = logging.getLogger("exportd.worker")

PROGRESS_EVERY = 0.5  # seconds between progress reports (and cancellation checks)
PERMANENT = (DomainError, OptionError, FormatNotApplicable, UnknownFormat, ValueError, TypeError)


async def run_export(ctx: dict[str, Any], export_id: str) -> dict[str, Any]:
    exports: ExportRepo = ctx["exports"]
    try:
        export = await exports.get(export_id)
    except NotFound:
        return {"export": export_id, "outcome": "deleted"}
    if export.status not in (ex.QUEUED, ex.PROCESSING):
        return {"export": export_id, "outcome": f"already {export.status}"}
    attempt = export.attempt + 1
    started = await exports.transition(
        export_id, ex.PROCESSING, expect=(ex.QUEUED, ex.PROCESSING), at_attempt=export.attempt,
        attempt=attempt, records_done=0,
    )
    if not started:
        return {"export": export_id, "outcome": "taken by another attempt"}
    try:
        return await _process(ctx, export, attempt)
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        log.warning("export %s attempt %d: Redis unavailable (%s); retrying", export_id, attempt, exc)
        raise Retry(defer=ctx.get("retry_delay", 5)) from exc
    except Cancelled:
        log.info("export %s attempt %d: cancelled", export_id, attempt)
        return {"export": export_id, "outcome": "cancelled"}
    except OSError as exc:
        detail = _disk_detail(exc)
        await _fail(exports, export_id, attempt, detail)
        return {"export": export_id, "outcome": "failed", "detail": detail}
    except PERMANENT as exc:
        detail = getattr(exc, "message", None) or str(exc)
        await _fail(exports, export_id, attempt, detail)
        return {"export": export_id, "outcome": "failed", "detail": detail}
    except Exception as exc:
        log.exception("export %s attempt %d failed", export_id, attempt)
        detail = f"the export could not be written ({type(exc).__name__}: {exc}); try again or ask an administrator"
        await _fail(exports, export_id, attempt, detail)
        return {"export": export_id, "outcome": "failed", "detail": detail}


async def _process(ctx: dict[str, Any], export: Export, attempt: int) -> dict[str, Any]:
    exports: ExportRepo = ctx["exports"]
    storage = ctx["storage"]
    dataset = await ctx["datasets"].get(export.dataset_id)
    fmt = REGISTRY.get(export.export_type)
    query = RecordQuery.parse(export.query, dataset)
    fields = query.fields(dataset)
    fmt.check(fields)
    options = fmt.parse_options(export.options, fields)
    scan = Scan(str(storage.path(dataset.data_key)), dataset, query)
    total = scan.count()
    await exports.update(export.id, expect=(ex.PROCESSING,), at_attempt=attempt, records_total=total)

    file_name = fmt.filename(dataset.dataset_id, options)
    key = f"{attempt_dir(export.id, attempt)}/{file_name}"
    progress = Progress()
    reporter = asyncio.create_task(_report(exports, export.id, attempt, progress))
    try:
        loop = asyncio.get_running_loop()
        written = await loop.run_in_executor(
            ctx["executor"], write_export, storage, key, f"{export.id}~{attempt}", scan, fmt, options, progress
        )
    except BaseException:
        progress.cancel.set()  # a cancelled job must not leave its thread writing
        raise
    finally:
        reporter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporter

    finished = now()
    try:
        ready = await exports.transition(
            export.id, ex.READY, expect=(ex.PROCESSING,), at_attempt=attempt,
            file_name=file_name, size=written.size, records_done=written.records,
            records_skipped=written.skipped, warnings=written.warnings,
            processed_date=finished, expires_at=expiry_from(finished, ctx["settings"].export_ttl),
        )
    except NotFound:
        ready = False
    if not ready:  # deleted, or superseded by a newer attempt: this file must not be served
        storage.delete(attempt_dir(export.id, attempt))
        return {"export": export.id, "outcome": "discarded"}
    log.info("export %s ready: %d records, %d bytes", export.id, written.records, written.size)
    return {"export": export.id, "outcome": "ready", "records": written.records, "size": written.size}


async def _report(exports: ExportRepo, export_id: str, attempt: int, progress: Progress) -> None:
    """Every half second: write the progress, and stop the writer if the export was deleted
    or another attempt took it over."""
    while True:
        await asyncio.sleep(PROGRESS_EVERY)
        try:
            still_ours = await exports.update(export_id, expect=(ex.PROCESSING,), at_attempt=attempt,
                                              records_done=progress.done)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            continue  # keep writing; the final transition will tell
        if not still_ours:
            progress.cancel.set()
            return


async def _fail(exports: ExportRepo, export_id: str, attempt: int, detail: str) -> None:
    with contextlib.suppress(NotFound):
        await exports.transition(export_id, ex.FAILED, expect=(ex.PROCESSING,), at_attempt=attempt,
                                 detail=detail, processed_date=now())


def _disk_detail(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "the export ran out of disk space on the worker; ask an administrator to free space, then try again"
    return f"the export file could not be written: {exc.strerror or exc}"
