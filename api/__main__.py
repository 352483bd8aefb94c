"""`python -m api`: the web process, with settings from EXPORTD_* environment variables."""
from __future__ import annotations

import logging

from aiohttp import web

from api.access_log import AccessLogger
from api.app import create_app
from domain.settings import Settings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env()
    web.run_app(create_app(settings), host=settings.host, port=settings.port, access_log_class=AccessLogger)


if __name__ == "__main__":
    main()
