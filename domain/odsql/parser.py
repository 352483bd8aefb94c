"""ODSQL tokens to syntax trees: the where grammar and the select, group_by and order_by lists.

where, by increasing precedence:

    condition := and_cond (OR and_cond)*
    and_cond  := not_cond (AND not_cond)*
    not_cond  := NOT not_cond | '(' condition ')' | "full text" | function '(' args ')' | predicate
    operand   := field | literal | now '(' [name '=' number, ...] ')' | date_part '(' field ')'
                 | date_format '(' field ',' string ')'
    predicate := operand [ op operand | [NOT] IN '(' literal, ... ')' | [NOT] IN ('['|']') bound '..' bound (']'|'[')
                         | [NOT] LIKE string | IS [NOT] NULL ]
"""
from __future__ import annotations

import math
import re
from typing import Callable, TypeVar

from domain.odsql import ast, geometry
from domain.odsql.cost import Budget, check_length
from domain.odsql.errors import ODSQLError
from domain.odsql.lexer import Token, tokenize

AGGREGATES = ("count", "sum", "avg", "min", "max", "median", "percentile", "envelope")
DATE_PARTS = ("year", "quarter", "month", "day", "dayofweek", "hour", "minute", "second", "millisecond")
# v2.1's names, then v2.0's: distance() is within_distance(), geometry(f, g, MODE) one of the
# three relations, polygon(f, g) within()
FILTER_FUNCTIONS = ("search", "startswith", "within_distance", "in_bbox", "intersects", "within", "disjoint",
                    "distance", "geometry", "polygon")
NOW_UNITS = ("years", "months", "weeks", "days", "hours", "minutes", "seconds", "microseconds",
             "year", "month", "day", "hour", "minute", "second", "microsecond")
MAX_RANGE_BOUNDS = 100
UNITS = ("m", "km", "mi", "yd", "ft", "cm", "mm")
KEYWORDS = ("and", "or", "not", "in", "like", "is", "null", "true", "false", "as", "asc", "desc")
COMPARISONS = {"=": "=", "!=": "!=", "<>": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
MAX_DEPTH = 64
T = TypeVar("T")
_INTEGER = re.compile(r"-?\d+")


class Parser:
    """A cursor over one clause's tokens, spending `budget` (a request's, or the clause's own)
    a term at a time."""

    def __init__(self, text: str, clause: str, budget: Budget | None = None) -> None:
        self.clause = clause
        self.budget = budget or Budget()
        check_length(text, clause)
        self.tokens = tokenize(text, clause)
        self.index = 0
        self.depth = 0

    # --- cursor ---

    @property
    def token(self) -> Token:
        return self.tokens[self.index]

    def peek(self, ahead: int = 1) -> Token:
        return self.tokens[min(self.index + ahead, len(self.tokens) - 1)]

    def advance(self) -> Token:
        token = self.token
        if token.kind != "eof":
            self.index += 1
        return token

    def error(self, problem: str | None = None, token: Token | None = None) -> ODSQLError:
        token = token or self.token
        return ODSQLError(problem or f"unexpected {token.show()}", token.pos, self.clause)

    def expect_punct(self, value: str) -> Token:
        if not self.token.is_punct(value):
            raise self.error(f"unexpected {self.token.show()}, expected '{value}'")
        return self.advance()

    def expect_end(self) -> None:
        if self.token.kind != "eof":
            raise self.error()

    def spend(self, token: Token) -> None:
        self.budget.spend(token.pos, self.clause)

    def accept_keyword(self, *words: str) -> Token | None:
        return self.advance() if self.token.is_keyword(*words) else None

    def field_ref(self) -> ast.FieldRef:
        token = self.token
        if token.kind == "qname" or (token.kind == "name" and token.value.lower() not in KEYWORDS):
            self.advance()
            return ast.FieldRef(token.value, pos=token.pos)
        raise self.error(f"unexpected {token.show()}, expected a field name")

    def literal(self) -> ast.Literal:
        token = self.advance()
        if token.kind == "geom":  # an unreadable one is refused by the function that takes it
            self.budget.spend_vertices(geometry.vertices(token.value), token.pos, self.clause)
        if token.kind in ("string", "number", "date", "geom"):
            return ast.Literal(token.kind, token.value, pos=token.pos)
        if token.is_punct("-") and self.token.kind == "number":
            return ast.Literal("number", "-" + self.advance().value, pos=token.pos)
        if token.is_keyword("true", "false"):
            return ast.Literal("bool", token.value.lower() == "true", pos=token.pos)
        if token.is_keyword("null"):
            return ast.Literal("null", None, pos=token.pos)
        raise self.error(f"unexpected {token.show()}, expected a value", token)

    # --- where ---

    def condition(self) -> ast.Node:
        first = self.token
        items = [self.and_condition()]
        while self.accept_keyword("or"):
            items.append(self.and_condition())
        return items[0] if len(items) == 1 else ast.BoolOp("or", tuple(items), pos=first.pos)

    def and_condition(self) -> ast.Node:
        first = self.token
        items = [self.not_condition()]
        while self.accept_keyword("and"):
            items.append(self.not_condition())
        return items[0] if len(items) == 1 else ast.BoolOp("and", tuple(items), pos=first.pos)

    def not_condition(self) -> ast.Node:
        token = self.token
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error("condition nested too deeply")
        try:
            if self.accept_keyword("not"):
                return ast.Not(self.not_condition(), pos=token.pos)
            if token.is_punct("("):
                self.advance()
                inner = self.condition()
                self.expect_punct(")")
                return inner
            if token.kind == "string":
                self.spend(token)
                self.advance()
                return ast.FullText(token.value, pos=token.pos)
            if token.kind == "name" and self.peek().is_punct("(") and token.value.lower() in FILTER_FUNCTIONS:
                return self.filter_call()
            return self.predicate()
        finally:
            self.depth -= 1

    def operand(self) -> ast.Node:
        token = self.token
        if token.kind == "name" and self.peek().is_punct("("):
            function = token.value.lower()
            if function == "now":
                return self.now()
            if function in DATE_PARTS or function == "date_format":
                return self.expression()
            raise self.error(f"unknown function '{token.value}'")
        if token.kind == "qname" or (token.kind == "name" and token.value.lower() not in KEYWORDS):
            return self.field_ref()
        return self.literal()

    def now(self) -> ast.Now:
        start = self.advance()
        self.expect_punct("(")
        shifts: list[tuple[str, int]] = []
        while not self.token.is_punct(")"):
            if shifts:
                self.expect_punct(",")
            unit = self.advance()
            if unit.kind != "name" or unit.value.lower() not in NOW_UNITS:
                raise self.error(f"unexpected {unit.show()}, now() takes {', '.join(NOW_UNITS)}", unit)
            if not self.token.is_punct("="):
                raise self.error(f"unexpected {self.token.show()}, expected '='")
            self.advance()
            self.spend(self.token)
            amount = self.literal()
            if amount.kind != "number" or not _INTEGER.fullmatch(str(amount.value)) or abs(int(str(amount.value))) > 100_000_000:
                raise self.error(f"now() expects a whole number of {unit.value.lower()}", self.tokens[self.index - 1])
            shifts.append((unit.value.lower(), int(str(amount.value))))
        self.expect_punct(")")
        return ast.Now(tuple(shifts), pos=start.pos)

    def predicate(self) -> ast.Node:
        start = self.token
        self.spend(start)
        left = self.operand()
        token = self.token
        if token.kind == "op":
            self.advance()
            return ast.Compare(COMPARISONS[token.value], left, self.operand(), pos=start.pos)
        negated = token.is_keyword("not") and self.peek().is_keyword("in", "like")
        if negated:
            self.advance()
        if self.token.is_keyword("in", "like"):
            in_parts = isinstance(left, ast.DatePart) and self.token.is_keyword("in")
            node = self.in_or_like(left if in_parts else self.as_field(left, start))
            return ast.Not(node, pos=start.pos) if negated else node
        if self.accept_keyword("is"):
            negated = self.accept_keyword("not") is not None
            if not self.accept_keyword("null"):
                raise self.error(f"unexpected {self.token.show()}, expected NULL")
            node = ast.IsNull(self.as_field(left, start), pos=start.pos)
            return ast.Not(node, pos=start.pos) if negated else node
        if isinstance(left, ast.FieldRef):
            return ast.BoolField(left, pos=start.pos)
        if left.kind == "bool":
            return left
        raise self.error(f"unexpected {start.show()}, expected a condition", start)

    def as_field(self, node: ast.FieldRef | ast.Literal, token: Token) -> ast.FieldRef:
        if not isinstance(node, ast.FieldRef):
            raise self.error(f"unexpected {token.show()}, expected a field name", token)
        return node

    def in_or_like(self, target: ast.FieldRef | ast.DatePart) -> ast.Node:
        keyword = self.advance()
        if keyword.is_keyword("like"):
            pattern = self.advance()
            if pattern.kind != "string":
                raise self.error(f"unexpected {pattern.show()}, LIKE expects a string", pattern)
            return ast.Like(target, pattern.value, pos=target.pos)
        opener = self.advance()
        if opener.is_punct("("):
            self.budget.spend_value(self.token.pos, self.clause)
            values = [self.literal()]
            while self.token.is_punct(","):
                self.advance()
                self.budget.spend_value(self.token.pos, self.clause)
                values.append(self.literal())
            self.expect_punct(")")
            return ast.InList(target, tuple(values), pos=target.pos)
        if opener.is_punct("[", "]"):
            low = self.bound()
            self.expect_punct("..")
            high = self.bound()
            closer = self.advance()
            if not closer.is_punct("[", "]"):
                raise self.error(f"unexpected {closer.show()}, expected ']' or '['", closer)
            return ast.InRange(target, low, high, opener.value == "[", closer.value == "]", pos=target.pos)
        raise self.error(f"unexpected {opener.show()}, expected '(' or '[' after IN", opener)

    def bound(self) -> ast.Literal | ast.Now:
        """A bound of an IN range: a literal or now(…)."""
        if self.token.is_keyword("now") and self.peek().is_punct("("):
            return self.now()
        return self.literal()

    def filter_call(self) -> ast.Call:
        self.spend(self.token)
        name = self.advance()
        function = name.value.lower()
        if function not in FILTER_FUNCTIONS:
            raise self.error(f"unknown function '{name.value}'", name)
        self.expect_punct("(")
        args: list[ast.Node] = [self.call_argument(function)]
        while self.token.is_punct(","):
            self.advance()
            args.append(self.call_argument(function))
        self.expect_punct(")")
        return ast.Call(function, tuple(args), pos=name.pos)

    def call_argument(self, function: str) -> ast.Node:
        token = self.token
        if token.is_punct("*"):
            self.advance()
            return ast.Star(pos=token.pos)
        if token.kind == "number" and function in ("within_distance", "distance") and self.peek().is_keyword(*UNITS):
            self.advance()
            return ast.Distance(float(token.value), self.advance().value.lower(), pos=token.pos)
        return self.operand()

    # --- select, group_by, order_by ---

    def expression(self) -> ast.Node:
        """A select or group_by expression: a field, an aggregate, a date part or date_format."""
        token = self.token
        if token.is_punct("*"):
            self.advance()
            return ast.Star(pos=token.pos)
        if not (token.kind == "name" and self.peek().is_punct("(")):
            return self.field_ref()
        function = self.advance().value.lower()
        self.advance()
        if function in AGGREGATES:
            if function == "count" and self.token.is_punct("*"):
                self.advance()
                node: ast.Node = ast.Aggregate("count", None, pos=token.pos)
            elif function == "count" and self.token.is_keyword("distinct") and self.peek().kind in ("name", "qname") \
                    and not self.peek().is_keyword(*KEYWORDS):
                self.advance()
                node = ast.Aggregate("count", self.field_ref(), distinct=True, pos=token.pos)
            elif function == "percentile":
                target = self.field_ref()
                self.expect_punct(",")
                self.spend(self.token)
                node = ast.Aggregate(function, target, param=self.number(0, 100, "percentile()"), pos=token.pos)
            else:
                node = ast.Aggregate(function, self.field_ref(), pos=token.pos)
        elif function == "range":
            node = self.range_key(token)
        elif function in DATE_PARTS:
            node = ast.DatePart(function, self.field_ref(), pos=token.pos)
        elif function == "date_format":
            target = self.field_ref()
            self.expect_punct(",")
            pattern = self.advance()
            if pattern.kind != "string":
                raise self.error(f"unexpected {pattern.show()}, date_format expects a string", pattern)
            node = ast.DateFormat(target, pattern.value, pos=token.pos)
        else:
            raise self.error(f"unknown function '{token.value}'", token)
        self.expect_punct(")")
        return node

    def number(self, low: float | None = None, high: float | None = None, what: str = "this") -> float:
        """A finite number literal, within [low, high] when given."""
        token = self.token
        literal = self.literal()
        value = float(str(literal.value)) if literal.kind == "number" else math.nan
        if not math.isfinite(value) or (low is not None and value < low) or (high is not None and value > high):
            bounds = f" from {ast.number(low)} to {ast.number(high)}" if low is not None and high is not None else ""
            raise self.error(f"{what} expects a number{bounds} here", token)
        return value

    def range_key(self, start: Token) -> ast.Range:
        """The arguments of range( after its '(': a step, EQUI(step, low, high), or static bounds."""
        target = self.field_ref()
        self.expect_punct(",")
        self.spend(self.token)
        if self.token.is_keyword("equi") and self.peek().is_punct("("):
            self.advance()
            self.advance()
            step = self.number(what="EQUI()")
            self.expect_punct(",")
            low = self.number(what="EQUI()")
            self.expect_punct(",")
            high = self.number(what="EQUI()")
            self.expect_punct(")")
            if step <= 0 or high <= low or (high - low) / step > MAX_RANGE_BOUNDS:
                raise self.error(f"EQUI(step, low, high) needs 0 < step, low < high and at most {MAX_RANGE_BOUNDS} steps", start)
            return ast.Range(target, step=step, low=low, high=high, pos=start.pos)
        items: list[float | None] = []
        while True:
            if self.token.is_punct("*"):
                self.advance()
                items.append(None)
            else:
                items.append(self.number(what="range()"))
            if not self.token.is_punct(","):
                break
            self.advance()
            self.spend(self.token)
        if len(items) == 1 and items[0] is not None:
            if items[0] <= 0:
                raise self.error("range(field, step) needs a step above 0", start)
            return ast.Range(target, step=items[0], pos=start.pos)
        open_low, open_high = items[0] is None, len(items) > 1 and items[-1] is None
        bounds = items[open_low:len(items) - open_high]
        if None in bounds or not bounds or len(bounds) + open_low + open_high < 2 or len(bounds) > MAX_RANGE_BOUNDS:
            raise self.error(f"range(field, [*,] bound, …[, *]) takes 1 to {MAX_RANGE_BOUNDS} increasing bounds, "
                             "'*' only first or last, and two items at least", start)
        if any(b >= c for b, c in zip(bounds, bounds[1:])):
            raise self.error("range() bounds must increase", start)
        return ast.Range(target, bounds=tuple(b for b in bounds if b is not None), open_low=open_low,
                         open_high=open_high, pos=start.pos)

    def alias(self) -> str | None:
        if not self.accept_keyword("as"):
            return None
        token = self.advance()
        if token.kind not in ("name", "qname"):
            raise self.error(f"unexpected {token.show()}, expected an alias", token)
        return token.value

    def items(self, item: Callable[[], T]) -> list[T]:
        """A comma-separated list of `item()`, to the end of the clause; each item is a term."""
        self.spend(self.token)
        found = [item()]
        while self.token.is_punct(","):
            self.advance()
            self.spend(self.token)
            found.append(item())
        self.expect_end()
        return found


def parse_where(text: str, clause: str = "where", budget: Budget | None = None) -> ast.Node | None:
    """The condition in `text`, or None when it is blank."""
    parser = Parser(text, clause, budget)
    if parser.token.kind == "eof":
        return None
    node = parser.condition()
    parser.expect_end()
    return node
