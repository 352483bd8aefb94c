"""The one error every ODSQL clause raises when it cannot be read or run."""
from __future__ import annotations

from domain.errors import Invalid


class ODSQLError(Invalid):
    """A malformed or unsupported ODSQL clause: says what is wrong and where.

    `position` is the 0-based offset in the clause's text of the offending token and `clause`
    names the parameter ("where", "select", "group_by", "order_by", "refine", "exclude"); both
    also travel in `extra`, so the API's JSON error carries them."""

    status = 400
    error_code = "ODSQLError"

    def __init__(self, problem: str, position: int = 0, clause: str = "where") -> None:
        super().__init__(f"{problem} at position {position} of {clause}", position=position, clause=clause)
        self.problem = problem
        self.position = position
        self.clause = clause
