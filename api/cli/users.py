"""`exportd users list|add|token|password` (administrators): /api/v1/users. A token is printed
alone on stdout, so `TOKEN=$(exportd users token alice)` works; the service keeps only its hash.
A password (HTTP Basic on the management API) is asked twice at a terminal, else read from the
first line of stdin, never from the command line."""
from __future__ import annotations

import argparse
import getpass
import sys
from urllib.parse import quote

from api.cli.client import Client
from api.cli.errors import CliError
from api.cli.output import Output, table

USERS = "/api/v1/users"


def listing(client: Client, args: argparse.Namespace, out: Output) -> int:
    users = client.request("GET", USERS)["users"]
    out.result(users, table(((u["name"], "yes" if u["admin"] else "") for u in users), ("NAME", "ADMIN")))
    return 0


def add(client: Client, args: argparse.Namespace, out: Output) -> int:
    user = client.request("POST", USERS, {"name": args.name, "admin": args.admin})
    if not out.as_json:
        out.note(f"user {user['name']} added{' (administrator)' if user['admin'] else ''}; their API token:")
    out.result(user, user["token"])
    return 0


def token(client: Client, args: argparse.Namespace, out: Output) -> int:
    answer = client.request("POST", f"{USERS}/{quote(args.name, safe='')}/tokens")
    out.result(answer, answer["token"])
    return 0


def password(client: Client, args: argparse.Namespace, out: Output) -> int:
    answer = client.request("PUT", f"{USERS}/{quote(args.name, safe='')}/password", {"password": _read_password()})
    out.result(answer, f"password set for {answer['name']}")
    return 0


def _read_password() -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise CliError("the passwords differ")
    return first
