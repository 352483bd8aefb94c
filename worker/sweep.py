"""The sweeps (arq cron jobs), safe with many workers since each change is a compare-and-set:
- recover: a processing export whose lease lapsed (its worker was killed), or a queued one
  whose job is gone, goes to a new attempt, or fails after too many; the dead attempt's job
  leaves arq's queue in the same compare-and-set;
- sweep: ready exports past their expiry become expired and lose their files (objects, in a
  bucket); partial files left by dead attempts are removed, so are incomplete multipart
  uploads left by workers killed mid-upload, this host's cached copies of bucket files nobody
  read for long, the export directories left empty (local storage), and the queued jobs that
  can do nothing (their export gone, or a cron run whose worker died)."""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from arq.constants import job_key_prefix

from domain import exports as ex
from domain import keys, queue
from domain.errors import NotFound
from domain.exports import Export, ExportRepo
from domain.sharing import SharedFiles, drop_files
from domain.storage import cache_grace
from domain.timeutil import now

log = logging.getLogger("exportd.sweep")

PARTIAL_GRACE = 3600  # seconds an untouched untagged partial file (a dead import) is kept before the sweep removes it
UPLOAD_GRACE = 3600  # seconds an incomplete multipart upload may take before the sweep takes it for dead
QUEUED_GRACE = 30  # seconds a queued export may be without its job (queued, then enqueued) before recover takes it for lost
EMPTY_DIR_GRACE = 60  # seconds an empty export directory is kept (a worker may be about to publish into it)
STALE_JOB_GRACE = 600  # seconds after which a queued job that can do nothing (its export gone, a dead cron run) is removed


async def sweep(ctx: dict[str, Any]) -> dict[str, int]:
    exports: ExportRepo = ctx["exports"]
    storage = ctx["storage"]
    expired = 0
    for export_id in await exports.due_for_expiry(now()):
        try:
            if await exports.transition(export_id, ex.EXPIRED, expect=(ex.READY,)):  # counted with it
                export = await exports.get(export_id)
                await drop_files(SharedFiles(exports.redis), storage, export)
                expired += 1
        except NotFound:
            await exports.redis.zrem(keys.EXPORTS_READY, export_id)
    removed = storage.sweep_partials(PARTIAL_GRACE, await _dead_tags(exports, storage, with_imports=True))
    aborted = await asyncio.to_thread(storage.abort_stale_uploads, UPLOAD_GRACE)
    evicted = await asyncio.to_thread(storage.evict_cache, cache_grace(ctx["settings"]))
    pruned = await asyncio.to_thread(storage.prune_empty_dirs, ex.EXPORTS_PREFIX, EMPTY_DIR_GRACE)
    stale = await queue.drop_stale_jobs(exports.redis, ctx["settings"].queue_name, STALE_JOB_GRACE)
    if expired or removed or aborted or evicted or pruned or stale:
        log.info("sweep: %d exports expired, %d partial files removed, %d stale uploads aborted, %d cached copies evicted, "
                 "%d empty directories removed, %d stale jobs removed", expired, removed, aborted, evicted, pruned, stale)
    return {"expired": expired, "partials_removed": removed, "uploads_aborted": aborted, "cache_evicted": evicted,
            "dirs_removed": pruned, "stale_jobs_removed": stale}


async def _dead_tags(exports: ExportRepo, storage, with_imports: bool) -> set[str]:
    """The tags (export~attempt) of the partial files there are now whose attempt is no longer
    processing; with_imports, also the untagged ones of dataset imports."""
    dead = set()
    for tag in storage.partial_tags():
        export_id, _, attempt = tag.partition("~")
        if not attempt:
            if with_imports:
                dead.add(tag)
            continue
        try:
            export = await exports.get(export_id)
        except NotFound:
            dead.add(tag)
            continue
        if export.status != ex.PROCESSING or str(export.attempt) != attempt:
            dead.add(tag)
    return dead


async def recover(ctx: dict[str, Any]) -> dict[str, int]:
    exports: ExportRepo = ctx["exports"]
    settings = ctx["settings"]
    requeued = failed = 0
    for export_id in await exports.lapsed_leases():
        try:
            export = await exports.get(export_id)
        except NotFound:
            await exports.redis.zrem(keys.LEASES, export_id)
            continue
        if export.status != ex.PROCESSING:
            continue
        lapses = export.lapses + 1
        if lapses >= settings.max_attempts:
            detail = (f"the export stopped its worker {lapses} times (killed, out of memory or cut off); "
                      "ask for fewer records or a lighter format, or ask an administrator")
            failed += await _fail_lost(exports, export, lapses, detail, lease_lapsed=True,
                                       also=_dead_attempt_job(settings, export))
        elif await exports.transition(export_id, ex.QUEUED, expect=(ex.PROCESSING,), at_attempt=export.attempt,
                                      lease_lapsed=True, lapses=lapses, also=_dead_attempt_job(settings, export)):
            await queue.enqueue_export(ctx["redis"], settings.queue_name, export_id, export.dataset_id, export.attempt + 1)
            log.info("export %s: attempt %d lost its worker; attempt %d queued", export_id, export.attempt, export.attempt + 1)
            requeued += 1
    jobs_lost, lost_failed = await _requeue_lost_jobs(ctx, exports, settings)
    storage = ctx["storage"]
    # a dead attempt's half-written file goes at once: no attempt will ever finish it
    removed = storage.sweep_partials(0, await _dead_tags(exports, storage, with_imports=False))
    return {"requeued": requeued + jobs_lost, "failed": failed + lost_failed, "partials_removed": removed}


def _dead_attempt_job(settings, export: Export) -> list[list[str]]:
    """The commands taking a lapsed attempt's job out of arq's queue. They run only with the
    compare-and-set that finds the lease still lapsed, so no live worker holds that job: a
    worker renews its attempt's lease every half second, and one stalled past the lease has
    lost the export anyway (its next renewal fails and it stops; arq's own ending of the job
    then finds nothing left to remove)."""
    return queue.dead_job(settings.queue_name, keys.export_job_id(export.id, export.attempt))


async def _fail_lost(exports: ExportRepo, export: Export, lapses: int, detail: str, lease_lapsed: bool = False,
                     also: list[list[str]] | None = None) -> bool:
    """Fail an export lost too many times, if it is still where and at the attempt it was
    found (with lease_lapsed, only if its lease is still lapsed); counted in the metrics
    with the change."""
    return await exports.transition(export.id, ex.FAILED, expect=(export.status,), at_attempt=export.attempt,
                                    lease_lapsed=lease_lapsed, lapses=lapses, detail=detail, processed_date=now(),
                                    also=also or ())


async def _requeue_lost_jobs(ctx: dict[str, Any], exports: ExportRepo, settings) -> tuple[int, int]:
    """Queued exports without a job: what queued one stopped between its transition and its
    enqueue, or the job ended without taking the export (an older worker refused the job's
    shape, an error before run_export's own handling). Each goes to a new attempt (the lost
    one's number is skipped: arq keeps a finished job's id for an hour), or fails after too
    many losses, counted as lapses. Requeued and failed."""
    requeued = failed = 0
    for export_id in await exports.queued_before(time.time() - QUEUED_GRACE):
        try:
            export = await exports.get(export_id)
        except NotFound:
            continue
        job = keys.export_job_id(export_id, export.attempt + 1)
        if export.status != ex.QUEUED or await ctx["redis"].exists(job_key_prefix + job):  # queued or running
            continue
        lapses = export.lapses + 1
        if lapses >= settings.max_attempts:
            detail = (f"the export's job was lost {lapses} times before a worker took it; "
                      "try again or ask an administrator")
            failed += await _fail_lost(exports, export, lapses, detail)
        elif await exports.update(export_id, expect=(ex.QUEUED,), at_attempt=export.attempt,
                                  attempt=export.attempt + 1, lapses=lapses):
            await queue.enqueue_export(ctx["redis"], settings.queue_name, export_id, export.dataset_id, export.attempt + 2)
            log.info("export %s: the job of attempt %d was lost; attempt %d queued", export_id, export.attempt + 1,
                     export.attempt + 2)
            requeued += 1
    return requeued, failed
