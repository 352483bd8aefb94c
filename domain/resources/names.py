"""Field names from column labels, as OpenDataSoft makes them: lower case ASCII, words joined
by `_`, unique within a resource. The label keeps the column name as written in the file."""
from __future__ import annotations

import re
import unicodedata
from typing import Iterable

from domain.resources.spec import Column

_NOT_WORD = re.compile(r"[^a-z0-9]+")


def field_name(label: str, position: int) -> str:
    """`Date de début` → `date_de_debut`; a label with no letter or digit → `column_<position>`."""
    ascii_label = unicodedata.normalize("NFKD", label).encode("ascii", "ignore").decode("ascii")
    name = _NOT_WORD.sub("_", ascii_label.lower()).strip("_")
    return name or f"column_{position}"


class Namer:
    """Names columns in the order they are met, keeping names unique (`name`, `name_2`, …).

    The same labels met in the same order always get the same names, so a resource read twice
    (once to infer its fields, once to read them) names its columns alike."""

    def __init__(self, reserved: Iterable[str] = ()) -> None:
        self._taken: set[str] = set(reserved)
        self._by_label: dict[str, Column] = {}

    def column(self, label: str) -> Column:
        known = self._by_label.get(label)
        if known is not None:
            return known
        base = field_name(label, len(self._by_label) + 1)
        name, n = base, 1
        while name in self._taken:
            n += 1
            name = f"{base}_{n}"
        self._taken.add(name)
        column = self._by_label[label] = Column(name, label)
        return column

    def columns(self, labels: Iterable[str]) -> list[Column]:
        """Columns for a header row: every position gets its own column, even a repeated label."""
        out = []
        for label in labels:
            if label in self._by_label:
                label_key = label
                n = 2
                while label_key in self._by_label:
                    label_key = f"{label} ({n})"
                    n += 1
                column = self.column(label_key)
                out.append(Column(column.name, label))
            else:
                out.append(self.column(label))
        return out


def lookup(columns: Iterable[Column], key: str) -> Column | None:
    """The column a parameter names, by field name or by its label in the file."""
    columns = list(columns)
    for column in columns:
        if column.name == key:
            return column
    for column in columns:
        if column.label == key:
            return column
    return None
