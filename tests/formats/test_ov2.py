"""OV2 writer: decoded with a reader written here from the record layout, compared with the samples."""
from __future__ import annotations

import gzip
import struct

import pyarrow as pa
import pytest
import shapely

from domain.fields import Field, fields_of, with_fields
from formats import REGISTRY, FormatNotApplicable, OptionError
from formats.parallel import INLINE_ROWS
from tests.formats.samples import awkward_table, empty_table, null_table, open_writer, write


def decode(data: bytes, encoding: str = "latin-1") -> list[tuple[float, float, str]]:
    """(lon, lat, name) of every type-2 record; fails on anything else."""
    records, pos = [], 0
    while pos < len(data):
        kind, length, lon, lat = struct.unpack_from("<Biii", data, pos)
        assert kind == 2 and length >= 14
        name = data[pos + 13: pos + length]
        assert name.endswith(b"\x00") and b"\x00" not in name[:-1]
        records.append((lon / 100_000, lat / 100_000, name[:-1].decode(encoding)))
        pos += length
    assert pos == len(data)
    return records


def points(table: pa.Table) -> list[dict]:
    return [r for r in table.to_pylist() if r["geo_point_2d"] is not None]


def test_awkward_table_points_with_latin1_names() -> None:
    table = awkward_table()
    data, writer = write("ov2", table)
    got = decode(data)
    expected = points(table)
    assert len(got) == len(expected) == 5 and writer.skipped == 1
    for (lon, lat, name), record in zip(got, expected):
        assert lon == pytest.approx(record["geo_point_2d"]["lon"], abs=1e-5)
        assert lat == pytest.approx(record["geo_point_2d"]["lat"], abs=1e-5)
        assert name == record["title"].encode("latin-1", "replace").decode("latin-1")
    assert got[0][2] == "Fête de la musique" and got[-1][2] == "?? ????"
    assert writer.warnings == ["2 name(s) had characters outside Latin-1, written as '?'"]


def test_utf8_names_and_name_field() -> None:
    table = awkward_table()
    got = decode(write("ov2", table, {"name_encoding": "utf-8"})[0], "utf-8")
    assert [n for _, _, n in got] == [r["title"] for r in points(table)]
    got = decode(write("ov2", table, {"name_field": "organiser_name"})[0])
    assert [n for _, _, n in got] == ["Ville de Paris", "Ünïon", "", "x" * 10, "???"]


def test_non_text_name_field_is_rendered() -> None:
    got = decode(write("ov2", awkward_table(), {"name_field": "starts_at", "timezone": "Europe/Paris"})[0])
    assert got[0][2] == "2024-06-21T20:30:00+02:00"
    got = decode(write("ov2", awkward_table(), {"name_field": "attendance"})[0])
    assert got[-1][2] == "7"


def test_without_text_field_names_are_empty() -> None:
    table = awkward_table().select(["attendance", "geo_point_2d"])
    got = decode(write("ov2", table)[0])
    assert [n for _, _, n in got] == [""] * 5


def test_geo_shape_only_uses_centroids() -> None:
    table = awkward_table().drop_columns(["geo_point_2d"])
    data, writer = write("ov2", table)
    got = decode(data)
    shapes = [shapely.from_wkb(r["geo_shape"]) for r in table.to_pylist() if r["geo_shape"] is not None]
    assert len(got) == len(shapes) and writer.skipped == 1
    for (lon, lat, _), shape in zip(got, shapes):
        centroid = shape.centroid
        assert lon == pytest.approx(centroid.x, abs=1e-5) and lat == pytest.approx(centroid.y, abs=1e-5)


def test_nul_in_names_is_removed() -> None:
    table = pa.table({"name": ["a\x00b"], "geo_point_2d": awkward_table().column("geo_point_2d").slice(0, 1)})
    table = table.replace_schema_metadata(with_fields(table.schema, fields_of(table.schema)).metadata)
    assert decode(write("ov2", table)[0])[0][2] == "ab"


def test_empty_and_null_tables_write_nothing() -> None:
    data, writer = write("ov2", empty_table())
    assert data == b"" and writer.skipped == 0
    data, writer = write("ov2", null_table())
    assert data == b"" and writer.skipped == 2


def test_compressed() -> None:
    plain, _ = write("ov2", awkward_table())
    zipped, _ = write("ov2", awkward_table(), {"compressed": "yes"})
    assert gzip.decompress(zipped) == plain


def test_bad_and_unknown_options() -> None:
    with pytest.raises(OptionError, match="name_field"):
        write("ov2", awkward_table(), {"name_field": "nope"})
    with pytest.raises(OptionError, match="name_field"):
        write("ov2", awkward_table(), {"name_field": "geo_shape"})
    with pytest.raises(OptionError, match="name_encoding"):
        write("ov2", awkward_table(), {"name_encoding": "ebcdic"})
    with pytest.raises(OptionError, match="unknown option"):
        write("ov2", awkward_table(), {"name": "title"})
    with pytest.raises(OptionError, match="epsg"):
        write("ov2", awkward_table(), {"epsg": 2154})


def test_dataset_without_geometry_is_refused() -> None:
    fmt = REGISTRY.get("ov2")
    with pytest.raises(FormatNotApplicable):
        fmt.check([Field("title", "text")])
    fmt.check([Field("where", "geo_shape")])
    assert fmt.binary and fmt.media_type == "application/octet-stream"


def test_many_records_in_odd_batches_match_pythons_own_encoding() -> None:
    """Batches (Arrow slices) that are pure ASCII, Latin-1, beyond it (U+0100, CJK, emoji
    outside the BMP) or mixed, with nulls, empty names and NULs: every record decodes to
    what Python's own encoder makes of its name, at its point."""
    words = ["plain", "Fête", "ÿ end of Latin-1", "Ā first beyond", "東京", "emoji 😀 ok", "", None, "a\x00b\x00", "\x00"]
    count = 1_000
    names = [words[(n * n + n // 7) % len(words)] if n % 400 >= 200 else f"ascii {n}" for n in range(count)]
    lons = [((n * 37) % 3600 - 1800) / 10.123 for n in range(count)]
    lats = [((n * 53) % 1800 - 900) / 10.456 for n in range(count)]
    points = pa.array([None if n % 97 == 5 else {"lon": lon, "lat": lat} for n, (lon, lat) in enumerate(zip(lons, lats))],
                      awkward_table().schema.field("geo_point_2d").type)
    table = pa.table({"name": pa.array(names, pa.string()), "geo_point_2d": points})
    table = table.replace_schema_metadata(with_fields(table.schema, fields_of(table.schema)).metadata)
    for encoding in ("latin-1", "utf-8"):
        data, writer = write("ov2", table, {"name_encoding": encoding}, batch_size=97)
        kept = [n for n in range(count) if n % 97 != 5]
        expected = [("" if names[n] is None else names[n].replace("\x00", "")).encode(encoding, "replace").decode(encoding)
                    for n in kept]
        got = decode(data, encoding)
        assert [name for _, _, name in got] == expected and writer.skipped == count - len(kept)
        assert [(lon, lat) for lon, lat, _ in got] == [(round(lons[n] * 100_000) / 100_000, round(lats[n] * 100_000) / 100_000)
                                                         for n in kept]
        beyond = sum(1 for n in kept if names[n] is not None and any(ord(c) > 0xFF for c in names[n]))
        assert writer.warnings == ([f"{beyond} name(s) had characters outside Latin-1, written as '?'"]
                                   if encoding == "latin-1" else [])


def test_abort_stops_rendering_and_writes_nothing_more() -> None:
    table = pa.concat_tables([awkward_table()] * 400).combine_chunks()
    writer, out = open_writer("ov2", table)
    for batch in table.to_batches(max_chunksize=INLINE_ROWS + 1):  # on the rendering threads
        writer.write(batch)
    writer.abort()
    size = len(out.getvalue())
    assert size < len(write("ov2", table)[0])  # batches still rendering were dropped, not written
    writer.abort()
    assert len(out.getvalue()) == size
