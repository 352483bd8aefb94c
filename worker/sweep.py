"""The expiry sweep (an arq cron job): ready exports past their expiry become expired and
lose their files; partial files left by dead attempts are removed. Safe with many workers:
each expiry is a compare-and-set, so only one sweep acts on an export."""
from __future__ import annotations

import logging
from typing import Any

from domain import exports as ex
from domain.errors import NotFound
from domain.exports import ExportRepo, export_dir
from domain.timeutil import now

log = logging.getLogger("exportd.sweep")

PARTIAL_GRACE = 300  # seconds a partial file of a dead attempt is kept before it is removed


async def sweep(ctx: dict[str, Any]) -> dict[str, int]:
    exports: ExportRepo = ctx["exports"]
    storage = ctx["storage"]
    expired = 0
    for export_id in await exports.due_for_expiry(now()):
        try:
            if await exports.transition(export_id, ex.EXPIRED, expect=(ex.READY,)):
                storage.delete(export_dir(export_id))
                expired += 1
        except NotFound:
            await exports.redis.zrem(ex.keys.EXPORTS_READY, export_id)
    removed = storage.sweep_partials(PARTIAL_GRACE, await _live_tags(exports, storage.partial_tags()))
    if expired or removed:
        log.info("sweep: %d exports expired, %d partial files removed", expired, removed)
    return {"expired": expired, "partials_removed": removed}


async def _live_tags(exports: ExportRepo, tags: set[str]) -> set[str]:
    """The partial-file tags (export~attempt) whose attempt is still processing."""
    live = set()
    for tag in tags:
        export_id, _, attempt = tag.partition("~")
        try:
            export = await exports.get(export_id)
        except NotFound:
            continue
        if export.status == ex.PROCESSING and str(export.attempt) == attempt:
            live.add(tag)
    return live
