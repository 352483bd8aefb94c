"""A query over a dataset's records, and the streamed scan that runs it: the projection and
filter are pushed down to the Parquet reader, and records come out as Arrow batches, never as
one whole table."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Mapping

import pyarrow as pa
import pyarrow.dataset as pads

from domain.datasets import Dataset
from domain.errors import Invalid
from domain.fields import Field

BATCH_ROWS = 16 * 1024


@dataclass(frozen=True)
class RecordQuery:
    select: tuple[str, ...] = ()  # field names; empty means every field

    KEYS = ("select",)

    @classmethod
    def parse(cls, raw: Mapping[str, Any] | None, dataset: Dataset) -> "RecordQuery":
        raw = dict(raw or {})
        unknown = sorted(set(raw) - set(cls.KEYS))
        if unknown:
            raise Invalid(f"unknown query parameter(s): {', '.join(unknown)}; known: {', '.join(cls.KEYS)}")
        select = raw.get("select") or ()
        if isinstance(select, str):
            select = [s.strip() for s in select.split(",") if s.strip()]
        if not isinstance(select, (list, tuple)) or not all(isinstance(s, str) for s in select):
            raise Invalid("query 'select' must be a list of field names")
        names = {f.name for f in dataset.fields}
        missing = [s for s in select if s not in names]
        if missing:
            raise Invalid(f"query 'select' names unknown field(s): {', '.join(missing)}")
        return cls(select=tuple(select))

    def as_dict(self) -> dict[str, Any]:
        return {"select": list(self.select)} if self.select else {}

    def fields(self, dataset: Dataset) -> list[Field]:
        if not self.select:
            return list(dataset.fields)
        by_name = {f.name: f for f in dataset.fields}
        return [by_name[name] for name in self.select]


class Scan:
    """The records a query selects from one Parquet file, as batches."""

    def __init__(self, path: str, dataset: Dataset, query: RecordQuery, batch_rows: int = BATCH_ROWS):
        self.fields = query.fields(dataset)
        self._dataset = pads.dataset(path, format="parquet")
        self._columns = [f.name for f in self.fields]
        self._batch_rows = batch_rows
        self.schema = pa.schema([self._dataset.schema.field(n) for n in self._columns],
                                metadata=self._dataset.schema.metadata)

    def count(self) -> int:
        return self._dataset.count_rows()

    def batches(self) -> Iterator[pa.RecordBatch]:
        for batch in self._dataset.to_batches(columns=self._columns, batch_size=self._batch_rows):
            if batch.num_rows:
                yield batch
