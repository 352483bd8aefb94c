"""CSV writer: read back with the csv module and compared with the samples record by record,
in every option; batches rendered on worker threads come out in order; datetimes rendered by
formats.values as Python's isoformat gives them, past the fast path's limits too."""
from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest
import shapely

from domain.fields import fields_of, with_fields
from formats.parallel import INLINE_ROWS
from formats import REGISTRY
from formats.values import datetime_strings
from tests.formats.samples import awkward_table, empty_table, null_table, write

DELIMITER = {";": ";", "tab": "\t", "|": "|"}


def read(data: bytes, delimiter: str = ";") -> list[list[str]]:
    assert data.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""), delimiter=delimiter))


def expected(value, field_type: str, tz: str) -> str:
    if value is None:
        return ""
    if field_type == "datetime":
        return value.astimezone(ZoneInfo(tz)).isoformat()
    if field_type == "date":
        return value.isoformat()
    if field_type == "geo_point_2d":
        return f"{value['lat']}, {value['lon']}"
    if field_type == "geo_shape":
        return value  # compared as geometries below
    if field_type == "boolean":
        return "true" if value else "false"
    return str(value)


@pytest.mark.parametrize("delimiter", [";", "tab", "|"])
@pytest.mark.parametrize("tz", ["UTC", "America/New_York"])
@pytest.mark.parametrize("batch_size", [1, 4, 100])
def test_awkward_table_round_trips(delimiter, tz, batch_size) -> None:
    table = awkward_table()
    fields = fields_of(table.schema)
    data, writer = write("csv", table, {"delimiter": delimiter, "timezone": tz}, batch_size=batch_size)
    rows = read(data, DELIMITER[delimiter])
    assert rows[0] == table.column_names and len(rows) == table.num_rows + 1 and writer.skipped == 0
    assert data.count(b"\r\n") >= table.num_rows + 1  # CRLF line ends (one more inside a quoted value)
    for got, record in zip(rows[1:], table.to_pylist()):
        for value, field in zip(got, fields):
            want = expected(record[field.name], field.type, tz)
            if field.type == "geo_shape" and record[field.name] is not None:
                assert shapely.equals_exact(shapely.from_geojson(value), shapely.from_wkb(want), tolerance=1e-9)
            elif field.type in ("double", "geo_point_2d") and want:  # Arrow writes 3.0 as 3
                assert [float(v) for v in value.split(", ")] == [float(v) for v in want.split(", ")]
            else:
                assert value == want, (field.name, value, want)


def test_quote_all_quotes_every_value_but_not_nulls() -> None:
    table = awkward_table().select(["title", "attendance"])
    data, _ = write("csv", table, {"quote_all": True})
    lines = data.decode("utf-8-sig").split("\r\n")
    assert lines[1] == '"Fête de la musique";"1200"'
    assert lines[4] == ";"  # the record of nulls
    assert read(data)[2] == ['Say "hello", world; ok', "-5"]


def test_no_bom_labels_and_gzip() -> None:
    data, _ = write("csv", awkward_table(), {"with_bom": False, "use_labels": True})
    assert not data.startswith(b"\xef\xbb\xbf")
    assert read(b"\xef\xbb\xbf" + data)[0] == [f.label for f in fields_of(awkward_table().schema)]
    import gzip

    packed, _ = write("csv", awkward_table(), {"compressed": True})
    assert gzip.decompress(packed) == write("csv", awkward_table())[0]


def test_empty_and_null_tables() -> None:
    assert read(write("csv", empty_table())[0]) == [awkward_table().column_names]
    rows = read(write("csv", null_table())[0])
    assert rows[1:] == [[""] * len(awkward_table().column_names)] * 2


def test_many_batches_keep_their_order() -> None:
    """Batches are rendered two at a time on threads: records still come out in order."""
    n = 5_000
    table = pa.table({"n": pa.array(range(n), pa.int64()), "text": [f"é;{i}\n" for i in range(n)]})
    table = table.replace_schema_metadata(with_fields(table.schema, fields_of(table.schema)).metadata)
    rows = read(write("csv", table, batch_size=INLINE_ROWS + 1)[0])  # the last, smaller, after others
    assert [int(r[0]) for r in rows[1:]] == list(range(n))
    assert [r[1] for r in rows[1:]] == [f"é;{i}\n" for i in range(n)]


def test_abort_writes_nothing_more() -> None:
    table = pa.concat_tables([awkward_table()] * 400).combine_chunks()
    fmt = REGISTRY.get("csv")
    out = io.BytesIO()
    writer = fmt.open(out, table.schema, fields_of(table.schema), fmt.parse_options({}, fields_of(table.schema)))
    for batch in table.to_batches(max_chunksize=INLINE_ROWS + 1):  # on the rendering threads
        writer.write(batch)
    writer.abort()
    written = out.getvalue()
    assert written.startswith(b"\xef\xbb\xbf")
    assert out.getvalue() == written and len(read(written)) < table.num_rows + 1


@pytest.mark.parametrize("tz", ["UTC", "Europe/Paris", "America/St_Johns", "Asia/Kolkata"])
def test_datetime_strings_match_isoformat(tz) -> None:
    """The numpy fast path (years 0000-9999) and the string-kernel one (past them): the same
    text as Python's isoformat, with the zone's offset; nulls stay null; sliced arrays too."""
    base = datetime(2024, 3, 31, 0, 59, 59, tzinfo=timezone.utc)
    values = [base + timedelta(hours=h) for h in range(0, 30, 3)]
    values += [datetime(1969, 12, 31, 23, 59, 59, tzinfo=timezone.utc), None]
    # zones had offsets in seconds then (Paris +00:09:21): written as Python writes them
    values += [datetime(1900, 1, 1, tzinfo=timezone.utc), datetime(1, 1, 1, 12, tzinfo=timezone.utc)]
    zone = ZoneInfo(tz)
    for with_fraction in (False, True):
        shown = [v + timedelta(microseconds=5) if v and with_fraction and v.year > 1 else v for v in values]
        arr = pa.array([None, *shown], pa.timestamp("us", tz="UTC")).slice(1)
        want = [v.astimezone(zone).isoformat(timespec="microseconds" if with_fraction else "seconds")
                if v else None for v in shown]
        if with_fraction:  # a whole value among fractional ones shows .000000, as Arrow writes it
            want = [w.replace(":00+", ":00.000000+").replace(":00-", ":00.000000-") if w and "." not in w else w
                    for w in want]
        assert datetime_strings(arr, tz).to_pylist() == want
    far = pa.array([253433923200 * 1_000_000, None, 0], pa.int64()).cast(pa.timestamp("us", tz="UTC"))  # year 10001
    got = datetime_strings(far, tz).to_pylist()
    assert got[0].startswith(("10000-12-31T", "10001-01-01T")) and got[1] is None
    assert got[2] == datetime(1970, 1, 1, tzinfo=timezone.utc).astimezone(zone).isoformat()
