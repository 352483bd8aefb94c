"""arq's WorkerSettings for exportd: the jobs, the cron sweep, and the shared clients put into
ctx at start-up and closed at shut-down."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from arq import cron

from domain import keys, prepared, queue
from domain.datasets import DatasetRepo
from domain.exports import ExportRepo
from domain.settings import Settings
from domain.storage import open_storage
from worker.dataset_jobs import dataset_job
from worker.export_job import run_export
from worker.notify_job import notify_export
from worker.sweep import recover, sweep

log = logging.getLogger("exportd.worker")

HEARTBEAT_EVERY = 5  # seconds
POLL_DELAY = 0.05  # seconds between looks at the queue when idle: an export starts within 50 ms


async def startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx.get("settings") or Settings.from_env()
    ctx["settings"] = settings
    prepared.validated_formats(list(settings.exports_on_publish))  # a misspelt format stops the worker at once
    ctx["state"] = state = queue.connect(settings.redis_url)
    ctx["exports"] = ExportRepo(state, settings.lease_seconds, settings.queue_name)
    ctx["datasets"] = DatasetRepo(state)
    ctx["storage"] = await asyncio.to_thread(open_storage, settings)
    ctx["executor"] = ThreadPoolExecutor(max_workers=settings.worker_jobs, thread_name_prefix="export")
    ctx["worker_name"] = name = f"{socket.gethostname()}:{os.getpid()}"
    ctx["heartbeat"] = asyncio.create_task(_heartbeat(state, name))


async def shutdown(ctx: dict[str, Any]) -> None:
    heartbeat = ctx.get("heartbeat")
    if heartbeat is not None:
        heartbeat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await heartbeat
    if "executor" in ctx:
        ctx["executor"].shutdown(wait=True, cancel_futures=True)
    if "storage" in ctx:
        ctx["storage"].close()
    if "state" in ctx:
        with contextlib.suppress(Exception):
            await ctx["state"].zrem(keys.WORKERS, ctx["worker_name"])
        await ctx["state"].aclose()


async def _heartbeat(state, name: str) -> None:
    """Say this worker is alive, for /health; a worker missing for 3 beats is taken as gone."""
    while True:
        with contextlib.suppress(Exception):
            await state.zadd(keys.WORKERS, {name: time.time()})
        await asyncio.sleep(HEARTBEAT_EVERY)


def recover_every(settings: Settings) -> int:
    """Seconds between looks for exports whose worker died: a third of a lease, at most 5."""
    return max(1, min(5, settings.lease_seconds // 3))


def worker_settings(settings: Settings) -> dict[str, Any]:
    """The keyword arguments of arq.Worker for these settings: `python -m worker` and the
    tests build their workers from it, so both run exactly the same configuration."""
    return dict(
        functions=[run_export, sweep, recover, dataset_job, notify_export],
        cron_jobs=[
            cron(sweep, second={0}, unique=True),
            cron(recover, second=set(range(0, 60, recover_every(settings))), unique=True),
        ],
        on_startup=startup,
        on_shutdown=shutdown,
        redis_settings=queue.redis_settings(settings.redis_url),
        queue_name=settings.queue_name,
        max_jobs=settings.worker_jobs,
        alone_for=settings.worker_alone_ms / 1000,  # PromptWorker's: short jobs one at a time
        owner_running=settings.owner_running,  # PromptWorker's: a cap on one owner's running exports
        # running jobs stay in arq's queue until they end: a worker must read past all those
        # running elsewhere to find one it may start
        queue_read_limit=max(settings.queue_read_limit, settings.worker_jobs),
        job_timeout=settings.job_timeout + 120,  # the job stops itself first, and says why
        job_completion_wait=settings.shutdown_grace,
        keep_result=3600,
        poll_delay=POLL_DELAY,
        max_tries=5,
        job_serializer=queue.serialize,
        job_deserializer=queue.deserialize,
        ctx={"settings": settings},
    )
