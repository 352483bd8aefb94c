"""What can go wrong on the command line, each with its exit status: 1 when the export (or
publishing job) ended without a result, 2 for usage, HTTP and connection errors (argparse's
own usage errors also exit 2), 130 when interrupted."""
from __future__ import annotations

import http


class CliError(Exception):
    """A failure the command line reports as `exportd: <message>`, exiting with exit_code."""

    exit_code = 2


class Failed(CliError):
    """The work asked for ended without a result: an export failed, was rejected or expired;
    a publishing job failed."""

    exit_code = 1


class Interrupted(CliError):
    exit_code = 130


class HttpError(CliError):
    """The service answered with an error: its status and the message of its JSON error."""

    def __init__(self, status: int, message: str, error_code: str = ""):
        self.status = status
        self.error_code = error_code
        super().__init__(f"{status} {reason(status)}: {message}")


class Unreachable(CliError):
    """No answer at all: connection refused, name unknown, timed out, cut off."""


def reason(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"
