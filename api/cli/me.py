"""`exportd me [rotate-webhook-secret]`: who your token is (/api/v1/me), with the secret that
signs your exports' webhooks; `rotate-webhook-secret` draws a new one and prints it alone on
stdout, so `SECRET=$(exportd me rotate-webhook-secret)` works."""
from __future__ import annotations

import argparse

from api.cli.client import Client
from api.cli.output import Output

ME = "/api/v1/me"
ROTATE = "rotate-webhook-secret"


def me(client: Client, args: argparse.Namespace, out: Output) -> int:
    if args.action == ROTATE:
        answer = client.request("POST", f"{ME}/webhook_secret")
        out.result(answer, answer["webhook_secret"])
        return 0
    answer = client.request("GET", ME)
    out.result(answer, "\n".join([f"name: {answer['name']}", f"admin: {'yes' if answer['admin'] else 'no'}",
                                  f"webhook_secret: {answer['webhook_secret']}"]))
    return 0
