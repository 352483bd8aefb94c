"""`python -m worker`: one arq worker process with exportd's settings from the environment.

arq's worker exits when Redis goes away; this keeps the process alive instead, starting a new
arq worker with backoff until Redis answers again (running exports are recovered through
their leases). SIGTERM and SIGINT stop it: running exports get EXPORTD_SHUTDOWN_GRACE seconds
to finish, then are handed back for another worker."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal

import redis.exceptions

from domain import logs
from domain.settings import Settings
from worker.prompt_worker import PromptWorker
from worker.settings import worker_settings

log = logging.getLogger("exportd.worker")

BACKOFF = (0.5, 1, 2, 5, 10)  # seconds between attempts to reach Redis again


async def supervise(settings: Settings) -> None:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    current: list[PromptWorker] = []

    def stop(signum: int) -> None:
        stopping.set()
        for worker in current:
            worker.handle_sig_wait_for_completion(signum) if settings.shutdown_grace else worker.handle_sig(signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop, signum)

    failures = 0
    while not stopping.is_set():
        worker = PromptWorker(**worker_settings(settings), handle_signals=False)
        current[:] = [worker]
        try:
            await worker.async_run()
            failures = 0
        except asyncio.CancelledError:
            if not stopping.is_set():
                raise
        # WatchError: redis-py's word for a connection lost under arq's WATCH (a cron enqueue)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, redis.exceptions.WatchError,
                OSError) as exc:
            delay = BACKOFF[min(failures, len(BACKOFF) - 1)]
            failures += 1
            log.warning("Redis unavailable (%s); reconnecting in %s s", exc, delay)
            await _close_quietly(worker)
            try:
                await asyncio.wait_for(stopping.wait(), delay)
            except asyncio.TimeoutError:
                pass
            continue
        await _close_quietly(worker)


async def _close_quietly(worker: PromptWorker) -> None:
    try:
        await worker.close()
    except Exception as exc:  # Redis may still be away; the process goes on or stops regardless
        log.debug("closing the worker: %s", exc)


def nice_threads(increment: int) -> None:
    """Add `increment` to the niceness of every thread of this process (on Linux a thread's own;
    the threads libraries started on import, jemalloc's and polars', would keep theirs). Threads
    started later inherit it from the thread that starts them."""
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
            os.setpriority(os.PRIO_PROCESS, int(tid), min(19, os.getpriority(os.PRIO_PROCESS, int(tid)) + increment))


def main() -> None:
    logs.setup()
    logging.getLogger("arq.worker").setLevel(logging.WARNING)  # a line per cron sweep is noise; exports log their own
    settings = Settings.from_env()
    # Exports are batch work: where a worker shares cores with Redis and the web process, a
    # Redis reply or an API request must not wait for a worker's time slice to end
    nice_threads(settings.worker_nice)
    asyncio.run(supervise(settings))


if __name__ == "__main__":
    main()
