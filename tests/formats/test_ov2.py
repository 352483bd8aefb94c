"""OV2 writer: decoded with a reader written here from the record layout, compared with the samples."""
from __future__ import annotations

import gzip
import struct

import pyarrow as pa
import pytest
import shapely

from domain.fields import Field, fields_of, with_fields
from formats import REGISTRY, FormatNotApplicable, OptionError
from tests.formats.samples import awkward_table, empty_table, null_table, write


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
