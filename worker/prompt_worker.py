"""arq's Worker, starting the next job as soon as one of its slots frees.

arq looks at the queue every poll_delay, and a look starts jobs only into free slots: a job
that ended between two looks left its slot empty until the next one. A worker of 2 slots ran
at most 2 jobs a poll_delay — 40 small exports a second at 50 ms, however fast each was — and
a second worker added little. Here the wait between looks ends early when a job ends, so a
freed slot takes the next queued job at once; an idle worker still looks every poll_delay.
"""
from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from arq.worker import Worker


class PromptWorker(Worker):
    def __init__(self, *args: Any, poll_delay: float = 0.5, **kwargs: Any):
        super().__init__(*args, poll_delay=0, **kwargs)  # arq's loop then never sleeps on its own
        self.look_every = poll_delay
        self._slot_freed = asyncio.Event()

    def _release_sem_dec_counter_on_complete(self) -> None:
        super()._release_sem_dec_counter_on_complete()
        self._slot_freed.set()

    async def _poll_iteration(self) -> None:
        self._slot_freed.clear()  # a job ending during the look below sets it again: no wait then
        await super()._poll_iteration()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.look_every):
                await self._slot_freed.wait()
