"""ODSQL text to tokens.

Token kinds: `name` (a bare word: a field, a keyword or a function; keywords are matched
case-insensitively by the parser), `qname` (a `back-quoted` field name, never a keyword),
`string` ('single' or "double" quoted, backslash escapes the quote), `number`, `date` and
`geom` (the typed literals date'...' and geom'...'), `op` (= != <> < <= > >=), `punct`
(( ) [ ] , * - ..) and a final `eof`."""
from __future__ import annotations

import re
from dataclasses import dataclass

from domain.odsql.errors import ODSQLError

_NAME = re.compile(r"[^\W\d]\w*")
_NUMBER = re.compile(r"\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
_OPS = ("<=", ">=", "!=", "<>", "..", "=", "<", ">", "(", ")", "[", "]", ",", "*", "-")
_TYPED_LITERALS = ("date", "geom")


@dataclass(frozen=True)
class Token:
    kind: str
    value: str
    pos: int

    def is_keyword(self, *words: str) -> bool:
        """Whether the token is a bare word equal (ignoring case) to one of `words`."""
        return self.kind == "name" and self.value.lower() in words

    def is_punct(self, *values: str) -> bool:
        return self.kind in ("punct", "op") and self.value in values

    def show(self) -> str:
        """The token as a message quotes it."""
        if self.kind == "eof":
            return "end of input"
        if self.kind == "string":
            return f"string {self.value!r}"
        if self.kind in ("date", "geom"):
            return f"{self.kind}'{self.value}'"
        return f"token '{self.value}'"


def tokenize(text: str, clause: str = "where") -> list[Token]:
    """The tokens of `text`, ending with an `eof` token; ODSQLError on a character that starts
    no token or an unterminated quote."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        char = text[pos]
        if char.isspace():
            pos += 1
            continue
        if char == "`":
            end = text.find("`", pos + 1)
            if end < 0:
                raise ODSQLError("unterminated back-quoted name", pos, clause)
            tokens.append(Token("qname", text[pos + 1:end], pos))
            pos = end + 1
            continue
        if char in "\"'":
            value, end = _quoted(text, pos, clause)
            tokens.append(Token("string", value, pos))
            pos = end
            continue
        if match := _NUMBER.match(text, pos):
            tokens.append(Token("number", match.group(), pos))
            pos = match.end()
            continue
        if match := _NAME.match(text, pos):
            word = match.group()
            end = match.end()
            if word.lower() in _TYPED_LITERALS and end < len(text) and text[end] in "\"'":
                value, after = _quoted(text, end, clause)
                tokens.append(Token(word.lower(), value, pos))
                pos = after
            else:
                tokens.append(Token("name", word, pos))
                pos = end
            continue
        op = next((op for op in _OPS if text.startswith(op, pos)), None)
        if op is None:
            raise ODSQLError(f"unexpected character {char!r}", pos, clause)
        tokens.append(Token("op" if op in ("<=", ">=", "!=", "<>", "=", "<", ">") else "punct", op, pos))
        pos += len(op)
    tokens.append(Token("eof", "", len(text)))
    return tokens


def _quoted(text: str, start: int, clause: str) -> tuple[str, int]:
    """The content of the quoted string opening at `start`, and the offset just after it."""
    quote = text[start]
    out: list[str] = []
    pos = start + 1
    while pos < len(text):
        char = text[pos]
        if char == "\\" and pos + 1 < len(text):
            out.append(text[pos + 1])
            pos += 2
        elif char == quote:
            return "".join(out), pos + 1
        else:
            out.append(char)
            pos += 1
    raise ODSQLError("unterminated string", start, clause)
