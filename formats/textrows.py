"""Rows of text built from columns of values set between constant pieces of markup, for a
whole batch at once: `<row r="7"><c><v>42</v></c>…</row>` from the columns 7, 42, …

Arrow's element-wise join costs about as much per argument per row as copying the row, so
joining each column with its markup and then the columns into rows copies everything twice
and pays for three arguments per cell. Here every constant piece (what comes after one value
and before the next, for each pair of variants) is made once; the pieces and the value
columns are put in one string array, and one `take` with row-major indices lays them out:
the taken array's data buffer is the batch's rows, end to end.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from formats.values import string_bytes


@dataclass
class Slot:
    """One column of values and the markup around each: `variants` are (before, after) pairs,
    `choice` picks one per row (None: the first). The last variant is the one of rows whose
    value is null (their value adds nothing), so it is never chosen otherwise."""

    values: pa.Array  # string
    variants: tuple[tuple[str, str], ...]
    choice: np.ndarray | None = None

    def chosen(self) -> np.ndarray:
        count = len(self.values)
        choice = np.zeros(count, np.int64) if self.choice is None else self.choice.astype(np.int64)
        if self.values.null_count:
            valid = self.values.is_valid().to_numpy(zero_copy_only=False)
            choice = np.where(valid, choice, len(self.variants) - 1)
        return choice


def join_rows(slots: list[Slot], end: str) -> np.ndarray:
    """The bytes of every row: for each slot, its chosen `before`, its value and `after`,
    then `end`. Slots all have the same length; there is at least one."""
    count = len(slots[0].values)
    pieces: list[str] = []
    layout = np.empty((count, 2 * len(slots) + 1), np.int64)  # per row: piece, value, piece, …, piece
    afters, previous = ("",), np.zeros(count, np.int64)
    for n, slot in enumerate(slots):
        befores = [before for before, _ in slot.variants]
        choice = slot.chosen()
        layout[:, 2 * n] = len(pieces) + previous * len(befores) + choice
        pieces += [after + before for after in afters for before in befores]
        afters, previous = tuple(after for _, after in slot.variants), choice
    layout[:, -1] = len(pieces) + previous
    pieces += [after + end for after in afters]
    rows = np.arange(count)
    for n in range(len(slots)):  # values follow the pieces, slot after slot
        layout[:, 2 * n + 1] = len(pieces) + n * count + rows
    everything = pa.concat_arrays([pa.array(pieces, pa.string()), *(slot.values for slot in slots)])
    return string_bytes(everything.take(pa.array(layout.ravel())))[0]
