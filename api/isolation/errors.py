"""How a call that a query process could not finish answers: past a budget, dead, or failed
there with an error of its own."""
from __future__ import annotations

from typing import Any

from domain.errors import DomainError, Invalid, Unavailable


class QueryFailed(DomainError):
    """The query process died while running the call (a crash in native code)."""
    status = 500
    error_code = "query_failed"


class Relayed(DomainError):
    """An error the query process raised, as its fields came back."""

    def __init__(self, fields: dict[str, Any]) -> None:
        super().__init__(fields["message"], fields["error_code"], **fields.get("extra") or {})
        self.status = fields["status"]
        if fields.get("headers"):
            self.headers = fields["headers"]


def too_large(megabytes: int) -> Invalid:
    """A 400: the same query would need as much memory again."""
    return Invalid(f"the query needed more than {megabytes} MiB, the limit for one request; narrow it "
                   "(where, refine, fewer groups) or ask for an export", error_code="query_too_large", budget="memory")


def too_slow(seconds: int) -> Unavailable:
    """A 503: a quieter moment may let it finish."""
    error = Unavailable(f"the query ran past {seconds} s, the limit for one request; narrow it or try again later",
                        error_code="query_timeout", budget="time")
    error.headers = {"Retry-After": "10"}
    return error
