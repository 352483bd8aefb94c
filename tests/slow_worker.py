"""A real worker process (`python -m tests.slow_worker`) that takes its time: every Arrow batch
an export writes waits EXPORTD_TEST_BATCH_SECONDS (default 0.2) first, so a test can be sure
to interrupt an export mid-way however fast the writers become (a plain Parquet export, one
polars pipeline, reads no Arrow batches and is not slowed). Everything else is the production
worker."""
from __future__ import annotations

import os
import time
from contextlib import closing

from worker import writing
from worker.__main__ import main

_batches_for = writing.batches_for


def _slow_batches_for(scan):
    delay = float(os.environ.get("EXPORTD_TEST_BATCH_SECONDS", "0.2"))
    with closing(_batches_for(scan)) as batches:
        for batch in batches:
            time.sleep(delay)
            yield batch


if __name__ == "__main__":
    writing.batches_for = _slow_batches_for
    main()
