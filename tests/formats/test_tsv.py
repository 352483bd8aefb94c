"""TSV: csv's writer with tabs, read back with the csv module; csv's options apply but
`delimiter`, which is refused."""
from __future__ import annotations

import csv
import io

import pyarrow as pa
import pytest

from domain.fields import fields_of, with_fields
from formats import REGISTRY, OptionError
from tests.formats.samples import awkward_table, write


def read(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline=""), delimiter="\t"))


def test_tsv_is_csv_with_tabs_and_no_bom() -> None:
    table = awkward_table()
    tsv, _ = write("tsv", table)
    as_csv, _ = write("csv", table, {"delimiter": "tab", "with_bom": False})
    assert not tsv.startswith(b"\xef\xbb\xbf")
    assert tsv == as_csv  # one writer, two formats
    rows = read(tsv)
    assert rows[0] == table.column_names and len(rows) == table.num_rows + 1


def test_values_with_tabs_or_line_breaks_are_quoted() -> None:
    table = pa.table({"text": ["tab\there", "line\nbreak", 'say "hi"']})
    table = table.replace_schema_metadata(with_fields(table.schema, fields_of(table.schema)).metadata)
    data, _ = write("tsv", table)
    assert [row[0] for row in read(data)[1:]] == ["tab\there", "line\nbreak", 'say "hi"']


def test_csv_options_that_apply() -> None:
    table = awkward_table().select(["title", "attendance"])
    data, _ = write("tsv", table, {"quote_all": True, "with_bom": True, "use_labels": True})
    assert data.startswith(b"\xef\xbb\xbf")
    assert data.decode("utf-8-sig").split("\r\n")[1] == '"Fête de la musique"\t"1200"'
    fmt = REGISTRY.get("tsv")
    assert (fmt.extension, fmt.media_type) == ("tsv", "text/tab-separated-values; charset=utf-8")
    assert fmt.filename("events", fmt.parse_options({"compressed": "true"})) == "events.tsv.gz"
    with pytest.raises(OptionError, match="delimiter"):
        fmt.parse_options({"delimiter": ";"})
