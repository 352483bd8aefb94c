"""The `exportd` command line: its arguments, and the one place failures become a message on
stderr and an exit status. The service's URL and token come from --url/--token or
EXPORTD_URL/EXPORTD_TOKEN; --json, --progress, --url and --token may come before or after the
command."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable

from api.cli import datasets, exports, me, users
from api.cli.client import Client
from api.cli.errors import CliError, HttpError, Interrupted
from api.cli.output import Output

DEFAULT_URL = "http://127.0.0.1:8080"
CLOSED_PIPE = 141  # what a shell reports for a command that died of SIGPIPE
EPILOG = """exit status: 0 done; 1 the export failed, was rejected or expired (its detail on stderr),
or publishing failed; 2 usage, HTTP or connection errors; 130 interrupted; 141 stdout was closed."""


def _common(under_command: bool) -> argparse.ArgumentParser:
    """The options every command takes. Under a command they default to SUPPRESS, so they
    override the top-level values only when given there."""
    def default(value: object) -> object:
        return argparse.SUPPRESS if under_command else value

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=default(os.environ.get("EXPORTD_URL") or DEFAULT_URL),
                        help=f"the service (EXPORTD_URL; default {DEFAULT_URL})")
    common.add_argument("--token", default=default(os.environ.get("EXPORTD_TOKEN")), help="your API token (EXPORTD_TOKEN)")
    common.add_argument("--json", action="store_true", default=default(False), help="print JSON resources, for scripts")
    common.add_argument("--progress", action="store_true", default=default(False),
                        help="draw progress bars even when stderr is not a terminal")
    return common


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="exportd", description="Exports of open-data datasets, from an exportd service.",
                                  parents=[_common(False)], epilog=EPILOG)
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = [_common(True)]

    def command(group: argparse._SubParsersAction, name: str, run: Callable, help: str) -> argparse.ArgumentParser:
        sub = group.add_parser(name, parents=common, help=help, description=help, epilog=EPILOG)
        sub.set_defaults(run=run)
        return sub

    export = command(commands, "export", exports.create,
                     "create an export; with --wait or -o, follow its progress, download it, and fail with its detail if it fails")
    export.add_argument("dataset", metavar="DATASET", help="the dataset's id")
    export.add_argument("--format", "-f", required=True, help="csv, json, geojson, xlsx, shp, parquet, …")
    export.add_argument("--where", action="append", default=[], help="an ODSQL filter (repeat to AND them)")
    export.add_argument("--select", help="the fields, comma-separated (ODSQL select)")
    export.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                        help="a format option, e.g. delimiter=';' (repeatable)")
    export.add_argument("--name", help="a name for the export")
    export.add_argument("--changes-since", metavar="VERSION",
                        help="only the records added, changed or removed since this version or snapshot of the dataset")
    export.add_argument("--wait", action="store_true", help="wait until it is ready and download it")
    export.add_argument("-o", "--output", type=Path, metavar="FILE",
                        help="download it to FILE (implies --wait; default: the export's file name)")
    export.add_argument("--estimate", action="store_true",
                        help="create nothing: print the records it would hold, its estimated size and duration")
    export.add_argument("--notify-url", metavar="URL",
                        help="a webhook told of the export's end (ready, failed, rejected, expired), signed with "
                             "your webhook secret (exportd me)")

    whoami = command(commands, "me", me.me, "who your token is, and the secret that signs your webhooks")
    whoami.add_argument("action", nargs="?", choices=[me.ROTATE], metavar=me.ROTATE,
                        help="draw a new webhook secret and print it; the old one signs nothing from then on")

    group = commands.add_parser("exports", help="your exports (an administrator's: everyone's)").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    listing = command(group, "list", exports.listing, "a page of exports, newest first")
    listing.add_argument("--page", type=int, default=1)
    listing.add_argument("--per-page", type=int, default=25)
    listing.add_argument("--status", help="only exports in this status (queued, processing, ready, failed, …)")
    listing.add_argument("--dataset", help="only exports of this dataset")
    command(group, "show", exports.show, "one export").add_argument("id", metavar="ID")
    command(group, "cancel", exports.cancel, "cancel and delete an export").add_argument("id", metavar="ID")
    fetch = command(group, "download", exports.fetch,
                    "wait for an export and download it, continuing an interrupted download")
    fetch.add_argument("id", metavar="ID")
    fetch.add_argument("-o", "--output", type=Path, metavar="FILE", help="default: the export's file name")

    group = commands.add_parser("datasets", help="the catalog; loading datasets (administrators)").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    command(group, "list", datasets.listing, "the datasets you may export")
    load = command(group, "load", datasets.load,
                   "upload a file (CSV, GeoJSON, Parquet, XLSX) and publish it as a dataset, or as a new version of it")
    load.add_argument("file", type=Path, metavar="FILE")
    load.add_argument("--id", dest="dataset_id", help="the dataset's id (default: generated)")
    load.add_argument("--title")
    load.add_argument("--description")

    group = commands.add_parser("users", help="users and their API tokens (administrators)").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    command(group, "list", users.listing, "every user")
    add = command(group, "add", users.add, "add a user and print their API token")
    add.add_argument("name", metavar="NAME")
    add.add_argument("--admin", action="store_true", help="an administrator")
    command(group, "token", users.token, "print a fresh API token for a user").add_argument("name", metavar="NAME")
    command(group, "password", users.password,
            "set a user's password for HTTP Basic on the management API (asked, or read from stdin)").add_argument("name", metavar="NAME")
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    client = Client(args.url, args.token)
    try:
        try:
            return args.run(client, args, Output(args.json, args.progress))
        except KeyboardInterrupt:
            raise Interrupted("interrupted") from None
        except BrokenPipeError:
            # the reader went away (`exportd exports list | head -3`): say nothing more, and point
            # stdout at /dev/null so the interpreter's own flush at exit does not raise again
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return CLOSED_PIPE
    except CliError as exc:
        message = str(exc)
        if isinstance(exc, HttpError) and exc.status == 401 and not args.token:
            message += " (set --token or EXPORTD_TOKEN)"
        print(f"exportd: {message}", file=sys.stderr)
        return exc.exit_code
