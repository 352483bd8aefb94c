"""What one request's ODSQL may cost before anything runs, and how many conditions combine.

A request's clauses together hold at most MAX_TERMS terms: a comparison or other predicate,
a full-text string, a filter function, a refine or exclude value, a select, group_by or
order_by item, a function's argument (a percentile, a range bound, a now() shift), and its IN
lists together at most MAX_LIST_VALUES values; its geometry literals together hold at most
MAX_VERTICES vertices, which bounds what shapely does per record. A clause's text holds
at most MAX_CLAUSE_CHARS characters. Past a bound the request is refused with an ODSQLError naming it.

Conditions are combined as balanced trees (`all_of`, `any_of`), and OR-ed equalities of a
field as one set lookup (compiler.one_of). pyarrow binds and evaluates Expressions
recursively, and when it binds one it refolds AND and OR chains left-deep whatever shape they
were given: some ten thousand terms overflow a thread's C stack and kill the process. So the
term limit is what bounds the depth, with a wide margin; tests/test_long_chains.py checks it."""
from __future__ import annotations

from typing import Callable, Iterable, TypeVar

from domain.odsql.errors import ODSQLError

MAX_TERMS = 1_000
MAX_CLAUSE_CHARS = 100_000
MAX_LIST_VALUES = 10_000
MAX_VERTICES = 20_000
T = TypeVar("T")


class Budget:
    """The terms and IN-list values a request has left; shared by the parsers of all its clauses."""

    def __init__(self, terms: int = MAX_TERMS, values: int = MAX_LIST_VALUES, vertices: int = MAX_VERTICES) -> None:
        self.left, self.values_left, self.vertices_left = terms, values, vertices

    def spend_vertices(self, count: int, position: int, clause: str) -> None:
        self.vertices_left -= count
        if self.vertices_left < 0:
            raise ODSQLError(f"the query's geometries hold more than {MAX_VERTICES} vertices, the limit for one request",
                             position, clause)

    def spend_value(self, position: int, clause: str) -> None:
        self.values_left -= 1
        if self.values_left < 0:
            raise ODSQLError(f"the query's IN lists hold more than {MAX_LIST_VALUES} values, the limit for one request",
                             position, clause)

    def spend(self, position: int, clause: str, terms: int = 1) -> None:
        self.left -= terms
        if self.left < 0:
            raise ODSQLError(f"the query has more than {MAX_TERMS} terms, the limit for one request "
                             "(conditions, refine and exclude values, select, group_by and order_by items)",
                             position, clause)


def check_length(text: str, clause: str) -> None:
    if len(text) > MAX_CLAUSE_CHARS:
        raise ODSQLError(f"the clause is {len(text)} characters long; the limit is {MAX_CLAUSE_CHARS}",
                         MAX_CLAUSE_CHARS, clause)


def balanced(parts: Iterable[T], combine: Callable[[T, T], T]) -> T | None:
    """`parts` combined pairwise, level by level: a tree of depth log2(n), not n. None when empty."""
    level = list(parts)
    if not level:
        return None
    while len(level) > 1:
        paired = [combine(a, b) for a, b in zip(level[::2], level[1::2])]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def all_of(parts: Iterable[T | None]) -> T | None:
    """The AND of the parts that are not None; None when there are none."""
    return balanced((p for p in parts if p is not None), lambda a, b: a & b)


def any_of(parts: Iterable[T]) -> T | None:
    return balanced(parts, lambda a, b: a | b)
