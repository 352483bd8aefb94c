"""The blocking part of an export, run in a thread: scan the dataset, stream every batch
through the format's writer into storage, report progress, stop when asked."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from domain.query import Scan
from domain.storage import LocalStorage
from formats import Format


class Cancelled(Exception):
    """The export was deleted or taken over while it was being written."""


@dataclass
class Progress:
    """Shared between the writing thread and the job: the thread counts, the job reports."""

    done: int = 0
    cancel: threading.Event = field(default_factory=threading.Event)


@dataclass
class Written:
    records: int
    skipped: int
    warnings: list[str]
    size: int


def write_export(storage: LocalStorage, key: str, tag: str, scan: Scan, fmt: Format,
                 options: dict[str, Any], progress: Progress, max_bytes: int | None = None) -> Written:
    """Write the export file under `key`; it appears only when whole. Raises Cancelled (and
    leaves nothing behind) when progress.cancel is set, ExportTooLarge past max_bytes."""
    with storage.writing(key, tag=tag, max_bytes=max_bytes) as out:
        writer = fmt.open(out, scan.schema, scan.fields, options)
        try:
            for batch in scan.batches():
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
    return Written(progress.done - writer.skipped, writer.skipped, list(writer.warnings), storage.size(key))
