"""A real worker process (`python -m tests.slow_worker`) that takes its time: every batch an
export writes waits EXPORTD_TEST_BATCH_SECONDS (default 0.2) first, so a test can be sure to
interrupt an export mid-way however fast the writers become. Everything else is the
production worker."""
from __future__ import annotations

import os
import time

from worker import writing
from worker.__main__ import main

_read_ahead = writing.read_ahead


def _slow_read_ahead(batches):
    delay = float(os.environ.get("EXPORTD_TEST_BATCH_SECONDS", "0.2"))
    for batch in _read_ahead(batches):
        time.sleep(delay)
        yield batch


if __name__ == "__main__":
    writing.read_ahead = _slow_read_ahead
    main()
