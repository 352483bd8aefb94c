"""`python -m api`: the web process, with settings from EXPORTD_* environment variables."""
from __future__ import annotations

from aiohttp import web

from api.access_log import AccessLogger
from api.app import create_app
from domain import logs
from domain.settings import Settings


def main() -> None:
    logs.setup()
    settings = Settings.from_env()
    web.run_app(create_app(settings), host=settings.host, port=settings.port, access_log_class=AccessLogger)


if __name__ == "__main__":
    main()
