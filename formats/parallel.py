"""Batches rendered to bytes on worker threads and written in order, for the text writers whose
rendering of a batch depends on that batch alone (CSV, JSON, JSON Lines), and the threads that
do it.

The rendering kernels (pyarrow.compute, pyarrow's CSV writer, polars' JSON writer) release
the GIL, so with one thread a core, a 2-core worker renders two batches at once while the
export's thread writes the one before them: an export uses the machine as the native tools it
is measured against do. At most `threads` + 1 rendered batches are held. The threads are the
process's, shared by the exports it writes, so a small export starts none.
"""
from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor, wait
from functools import cache
from typing import Callable

import pyarrow as pa

Rendered = bytes | memoryview | pa.Buffer
THREADS = min(2, os.cpu_count() or 1)


@cache
def pool() -> ThreadPoolExecutor:
    """The process's rendering threads, one a core (at most two)."""
    return ThreadPoolExecutor(THREADS, thread_name_prefix="render")


def cancel(pending: list[Future]) -> None:
    """Cancel what has not started of `pending`, and wait for what has."""
    wait([f for f in pending if not f.cancel()])


class OrderedRendering:
    """`render(batch)` runs on the rendering threads; `write(rendered)` gets the results in the
    order the batches were submitted, on the caller's thread."""

    def __init__(self, render: Callable[[pa.RecordBatch], Rendered], write: Callable[[Rendered], object]):
        self._render, self._write = render, write
        self._pending: deque[Future[Rendered]] = deque()

    def submit(self, batch: pa.RecordBatch) -> None:
        self._pending.append(pool().submit(self._render, batch))
        while len(self._pending) > THREADS:
            self._write(self._pending.popleft().result())

    def finish(self) -> None:
        """Write every batch still being rendered."""
        while self._pending:
            self._write(self._pending.popleft().result())

    def abort(self) -> None:
        """Stop without writing anything more; returns once none of its batches renders."""
        pending, self._pending = list(self._pending), deque()
        cancel(pending)
