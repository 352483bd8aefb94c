"""`python -m worker`: one arq worker process with exportd's settings from the environment."""
from __future__ import annotations

import logging

from arq.worker import Worker

from domain.settings import Settings
from worker.settings import worker_settings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    Worker(**worker_settings(Settings.from_env())).run()


if __name__ == "__main__":
    main()
