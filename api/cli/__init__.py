"""`exportd`: the command-line client of the exportd service, for users and operators. It
speaks only the public HTTP API (OSDI exports, the Explore catalog, the management API v2,
/api/v1/users), with the standard library, so it runs wherever Python does.

    exportd export DATASET --format FMT [--where …] [--select …] [--option k=v] [--wait] [-o FILE]
    exportd exports list|show ID|cancel ID|download ID [-o FILE]
    exportd datasets list | datasets load FILE [--id ID] [--title T]
    exportd users list | users add NAME [--admin] | users token NAME
"""
from api.cli.main import main

__all__ = ["main"]
