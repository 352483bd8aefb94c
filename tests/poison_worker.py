"""A real worker process (`python -m tests.poison_worker`) with one planted fault: writing a
batch that holds a `poison` column kills the process with SIGKILL, as a segfaulting library or
the out-of-memory killer would. Everything else is the production worker."""
from __future__ import annotations

import os
import signal

from formats import csv as csv_format
from worker.__main__ import main

_write = csv_format.CsvWriter.write


def _poisoned_write(self, batch):
    if "poison" in batch.schema.names:
        os.kill(os.getpid(), signal.SIGKILL)
    return _write(self, batch)


if __name__ == "__main__":
    csv_format.CsvWriter.write = _poisoned_write
    main()
