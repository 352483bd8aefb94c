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
    # several web processes share the port only when asked: a stale one from another run must
    # not go on silently taking its share of the requests
    web.run_app(create_app(settings), host=settings.host, port=settings.port, access_log_class=AccessLogger,
                reuse_port=settings.web_processes > 1)


if __name__ == "__main__":
    main()
