"""The blocking part of an export, run in a thread: scan the dataset, stream every batch
through the format's writer into storage, report progress, stop when asked. The scan runs one
batch ahead in a thread of its own: Parquet decoding releases the GIL, so it overlaps the
writer's work (a second core does the reading). The reading threads are the process's, shared
by its exports, so a small export starts none. A writer that hands its batches to polars
(Parquet) takes the whole scan as one polars pipeline when the scan allows (Scan.lazy)."""
from __future__ import annotations

import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from functools import cache
from typing import Any, BinaryIO, Iterable, Iterator

import polars as pl
import pyarrow as pa

from domain.query import Scan
from domain.storage import Digest, Storage
from formats import Format, datapackage
from formats.base import OpenWriter
from formats.parallel import cancel

READERS = 4  # scans read ahead at once in a process; more wait their turn

# Arrow's buffers come from the C library's allocator, not its default jemalloc, which kept
# 70-90 MiB more resident across an export's threads (bench/one.py at 1M rows: geojson 404 ->
# 336 MiB, jsonl 367 -> 293, parquet 389 -> 303, csv 351 -> 256, csv ~14% slower): what keeps a
# 10,000,000-row export of any format under 400 MiB.
pa.set_memory_pool(pa.system_memory_pool())


class Cancelled(Exception):
    """The export was deleted or taken over while it was being written."""


@dataclass
class Progress:
    """Shared between the writing thread and the job: the thread counts, the job reports."""

    done: int = 0
    total: int | None = None  # the records to write, once the scan has counted them
    cancel: threading.Event = field(default_factory=threading.Event)


@dataclass
class Written:
    records: int
    skipped: int
    warnings: list[str]
    size: int
    sha256: str = ""


@cache
def readers() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(READERS, thread_name_prefix="export-scan")


def read_ahead(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """`batches`, the next one read on a reading thread while the caller handles this one.
    Closing the generator waits for the batch in flight, so nothing reads on afterwards."""
    source = iter(batches)
    pending = readers().submit(next, source, None)
    try:
        while (batch := pending.result()) is not None:
            pending = readers().submit(next, source, None)
            yield batch
    finally:
        cancel([pending])


def batches_for(scan: Scan) -> Iterator[pa.RecordBatch]:
    """The scan's Arrow record batches, read one ahead when there are several."""
    if scan.count() <= scan.batch_rows:  # one batch: nothing to read while it is written
        return scan.batches()
    return read_ahead(scan.batches())


def write_lazy(writer: OpenWriter, frame: pl.LazyFrame, progress: Progress) -> None:
    """The scan as one polars pipeline into a writer that hands it to polars anyway: progress
    counted as polars reads, and the pipeline stopped when the export is cancelled."""
    def seen(batch: pl.DataFrame) -> None:
        if progress.cancel.is_set():
            raise Cancelled()
        progress.done += batch.height  # polars calls this for one batch at a time

    try:
        writer.write_lazy(frame, seen)
    except Exception:
        if progress.cancel.is_set():  # polars gives back what seen raised as its own error
            raise Cancelled() from None
        raise


def write_export(storage: Storage, key: str, tag: str, scan: Scan, fmt: Format, options: dict[str, Any],
                 progress: Progress, max_bytes: int | None = None, about: datapackage.About | None = None,
                 member: str = "", name: str | None = None) -> Written:
    """Write the export file under `key`; it appears only when whole. Raises Cancelled (and
    leaves nothing behind) when progress.cancel is set, ExportTooLarge past max_bytes. The
    file's SHA-256 is taken as it is written (domain/storage/base.py's Hashing). With the
    `datapackage` option the file is `member` of a zip beside its descriptor, which `about`
    informs (formats/datapackage.py). `name` (the dataset's id) names what the file holds: a
    shapefile's members, a sheet."""
    packaged = bool(options.get("datapackage"))
    # a writer that hands the scan to polars is better left polars' own file, and read back;
    # so is a zip, which may seek back to finish its headers
    digest = Digest(streamed=not getattr(fmt.writer, "takes_lazy", False) and not packaged)
    with storage.writing(key, tag=tag, max_bytes=max_bytes, digest=digest) as out:
        if packaged:
            with tempfile.TemporaryFile(prefix="exportd-package-") as inner:
                writer = write_file(inner, scan, fmt, options, progress, name)
                inner.seek(0)
                datapackage.pack(out, inner, member, fmt, options, scan.fields, about or datapackage.About({}, {}))
        else:
            writer = write_file(out, scan, fmt, options, progress, name)
    return Written(progress.done - writer.skipped, writer.skipped, list(writer.warnings), storage.size(key),
                   digest.sha256)


def write_file(out: BinaryIO, scan: Scan, fmt: Format, options: dict[str, Any], progress: Progress,
               name: str | None = None) -> OpenWriter:
    """The format's file of the scan onto `out`, the writer closed; Cancelled when asked."""
    writer = fmt.open(out, scan.schema, scan.fields, options, name=name)
    try:
        frame = scan.lazy() if writer.takes_lazy else None
        if frame is not None:
            write_lazy(writer, frame, progress)
        else:
            with closing(batches_for(scan)) as batches:
                for batch in batches:
                    if progress.cancel.is_set():
                        raise Cancelled()
                    writer.write(batch)
                    progress.done += batch.num_rows
        if progress.cancel.is_set():
            raise Cancelled()
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return writer
