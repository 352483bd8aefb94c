"""Batches rendered to bytes on worker threads and written in order, for the text writers whose
rendering of a batch depends on that batch alone (CSV, JSON, JSON Lines), and the threads that
do it.

The rendering kernels (pyarrow.compute, pyarrow's CSV writer, polars' JSON writer) release
the GIL, so with one thread a core, a 2-core worker renders two batches at once while the
export's thread writes the one before them: an export uses the machine as the native tools it
is measured against do. At most `threads` + 1 rendered batches are held. The threads are the
process's, shared by the exports it writes, so a small export starts none.

Writers whose whole file polars can write (Parquet, JSON Lines of plain types) hand their
batches to one of polars' streaming sinks instead (`PolarsSink`): polars encodes on its own
threads without the GIL, columns in parallel, as its own sink_parquet/sink_ndjson do.
"""
from __future__ import annotations

import os
import queue
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor, wait
from functools import cache
from typing import Callable, Iterator

import polars as pl
import pyarrow as pa
from polars.io.plugins import register_io_source

Rendered = bytes | memoryview | pa.Buffer
THREADS = min(2, os.cpu_count() or 1)
# a batch this small is rendered on the caller's thread: handing it to a rendering thread and
# back cost a small export more than rendering it (two thread wake-ups, on a busy machine each
# a wait for a core)
INLINE_ROWS = 1024


@cache
def pool() -> ThreadPoolExecutor:
    """The process's rendering threads, one a core (at most two)."""
    return ThreadPoolExecutor(THREADS, thread_name_prefix="render")


def put_while_alive(inbox: queue.Queue, item: object, consumer: threading.Thread) -> bool:
    """Put `item` into the bounded `inbox`, waiting while it is full; False, not put, once
    the `consumer` thread that empties it has ended (it would never make room)."""
    while consumer.is_alive():
        try:
            inbox.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


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
        if batch.num_rows <= INLINE_ROWS and not self._pending:  # nothing ahead of it to keep in order
            self._write(self._render(batch))
            return
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


class PulledSink:
    """Batches pushed by a writer (`put`), pulled by a library's streaming writer running on a
    thread of its own (`consume(source)`), from a source whose batches come from a generator
    fed by a bounded queue, so at most `QUEUED` batches wait. Subclasses make the source."""

    QUEUED = 2
    _END, _ABORT = object(), object()

    def __init__(self, consume: Callable[[object], object], source: object, name: str):
        self._queue: queue.Queue = queue.Queue(self.QUEUED)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(consume, source), name=name, daemon=True)
        self._thread.start()

    def _pulled(self) -> Iterator[pa.RecordBatch]:
        while (batch := self._queue.get()) is not self._END:
            if batch is self._ABORT:
                raise SinkAborted()
            yield batch

    def _run(self, consume: Callable[[object], object], source: object) -> None:
        try:
            consume(source)
        except BaseException as exc:  # handed to the writer's thread by put/finish
            self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def put(self, batch: pa.RecordBatch) -> None:
        """Queue `batch`, waiting while the queue is full; raises the sink's error if it failed."""
        if not put_while_alive(self._queue, batch, self._thread):
            self._raise()

    def finish(self) -> None:
        """Every batch written and the sink's file finished; raises the sink's error."""
        self.put(self._END)
        self._thread.join()
        self._raise()

    close = finish  # as formats.geo.ScratchWriter closes its threads

    def abort(self) -> None:
        """Stop the sink; once this returns it writes nothing more. Only this thread puts, so
        once the queued batches are dropped there is room for the stop."""
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._queue.put_nowait(self._ABORT)
        self._thread.join()


class PolarsSink(PulledSink):
    """A PulledSink for one of polars' streaming sinks (sink_parquet, sink_ndjson): polars then
    encodes in Rust on its own threads, columns and row groups in parallel, without the GIL.
    The sink reads a LazyFrame of the queued batches.

    `sink(frame)` runs the sink into the writer's output; `convert(batch)` (on the sink's
    thread) turns each batch into the columns polars writes; `schema` is their Arrow schema."""

    def __init__(self, schema: pa.Schema, sink: Callable[[pl.LazyFrame], object],
                 convert: Callable[[pa.RecordBatch], pa.RecordBatch] = lambda batch: batch):
        self._convert = convert
        frame = register_io_source(self._frames, schema=pl.from_arrow(schema.empty_table()).schema)
        super().__init__(sink, frame, "polars-sink")

    def _frames(self, with_columns, predicate, n_rows, batch_size) -> Iterator[pl.DataFrame]:
        for batch in self._pulled():
            yield pl.from_arrow(self._convert(batch))


class ArrowStreamSink(PulledSink):
    """A PulledSink for a writer that reads an Arrow stream (GDAL's, through pyogrio's
    write_arrow): `consume(reader)` gets a RecordBatchReader of the queued batches."""

    def __init__(self, schema: pa.Schema, consume: Callable[[pa.RecordBatchReader], object]):
        super().__init__(consume, pa.RecordBatchReader.from_batches(schema, self._pulled()), "arrow-sink")


class SinkAborted(Exception):
    """Raised into polars' sink by the batch generator when the writer aborts."""
