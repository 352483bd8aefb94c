"""TSV, the `export_type` OSDI's own example asks for: csv's writer with a tab between values
and csv's other options. Text is quoted as csv quotes it (RFC 4180: every text value, quotes
doubled), so a value holding a tab or a line break reads back whole in Python's csv module,
pandas and spreadsheets; no byte order mark by default, as text tools expect."""
from __future__ import annotations

import dataclasses

from formats.base import Format
from formats.csv import FORMAT as CSV
from formats.csv import CsvWriter


def _writer(out, schema, fields, options) -> CsvWriter:
    return CsvWriter(out, schema, fields, {**options, "delimiter": "\t"})


FORMAT = Format(
    name="tsv",
    extension="tsv",
    media_type="text/tab-separated-values; charset=utf-8",
    writer=_writer,
    options=tuple(dataclasses.replace(o, default=False) if o.name == "with_bom" else o
                  for o in CSV.options if o.name != "delimiter"),
    description="Tab-separated values (text/tab-separated-values), text quoted as in CSV (RFC 4180).",
)
