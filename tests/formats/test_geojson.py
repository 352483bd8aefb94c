"""GeoJSON writer: read back with orjson and shapely.from_geojson, compared with the samples."""
from __future__ import annotations

import gzip
from datetime import date, datetime
from zoneinfo import ZoneInfo

import orjson
import pytest
import shapely

from domain import demo
from domain.fields import Field, fields_of
from formats import REGISTRY, FormatNotApplicable, OptionError
from formats.geojson import HEADER
from tests.formats.samples import awkward_table, empty_table, null_table, open_writer, write

PARIS = ZoneInfo("Europe/Paris")


def features(data: bytes) -> list[dict]:
    doc = orjson.loads(data)
    assert doc["type"] == "FeatureCollection"
    assert all(f["type"] == "Feature" for f in doc["features"])
    return doc["features"]


def geometry(feature: dict) -> shapely.Geometry | None:
    g = feature["geometry"]
    return None if g is None else shapely.from_geojson(orjson.dumps(g))


def test_awkward_table_round_trips_every_record_and_field() -> None:
    table = awkward_table()
    data, writer = write("geojson", table, {"timezone": "Europe/Paris"})
    got = features(data)
    assert len(got) == table.num_rows and writer.skipped == 0 and writer.warnings == []
    for feature, record in zip(got, table.to_pylist()):
        shape = record.pop("geo_shape")
        if shape is None:
            assert feature["geometry"] is None
        else:
            assert shapely.equals_exact(geometry(feature), shapely.from_wkb(shape), tolerance=1e-5)
        props = feature["properties"]
        assert list(props) == list(record)  # geo_shape is the geometry, not a property
        for name in ("title", "attendance", "price", "free", "category", "organiser_name", "organiser_name_2"):
            assert props[name] == record[name] and type(props[name]) is type(record[name])
        assert props["day"] == (None if record["day"] is None else record["day"].isoformat())
        if record["starts_at"] is None:
            assert props["starts_at"] is None
        else:
            written = datetime.fromisoformat(props["starts_at"])
            assert written == record["starts_at"]
            assert written.utcoffset() == record["starts_at"].astimezone(PARIS).utcoffset()
        assert props["geo_point_2d"] == record["geo_point_2d"]


def test_geo_shape_wins_and_points_are_used_without_it() -> None:
    table = awkward_table().drop_columns(["geo_shape"])
    got = features(write("geojson", table)[0])
    for feature, record in zip(got, table.to_pylist()):
        point = record["geo_point_2d"]
        assert "geo_point_2d" not in feature["properties"]
        if point is None:
            assert feature["geometry"] is None
        else:
            g = geometry(feature)
            assert g.geom_type == "Point"
            assert g.x == pytest.approx(point["lon"], abs=1e-5) and g.y == pytest.approx(point["lat"], abs=1e-5)


def test_default_timezone_is_utc() -> None:
    props = features(write("geojson", awkward_table())[0])[0]["properties"]
    assert props["starts_at"] == "2024-06-21T18:30:00+00:00"
    assert date.fromisoformat(props["day"]) == date(2024, 6, 21)


def test_empty_table_is_a_valid_empty_collection() -> None:
    data, _ = write("geojson", empty_table())
    assert features(data) == []


def test_null_table_has_null_geometries_and_properties() -> None:
    got = features(write("geojson", null_table())[0])
    assert len(got) == 2
    for feature in got:
        assert feature["geometry"] is None
        assert set(feature["properties"].values()) == {None}


def test_use_labels_names_the_properties() -> None:
    props = features(write("geojson", awkward_table(), {"use_labels": "true"})[0])[0]["properties"]
    labels = [f.label for f in fields_of(awkward_table().schema) if f.name != "geo_shape"]
    assert list(props) == labels and "Organiser Name 2" in props


def test_compressed_is_gzip_of_the_same_document() -> None:
    plain, _ = write("geojson", awkward_table())
    zipped, _ = write("geojson", awkward_table(), {"compressed": True})
    assert gzip.decompress(zipped) == plain


def test_other_epsg_reprojects_and_names_the_crs() -> None:
    from fiona.transform import transform

    data, _ = write("geojson", awkward_table(), {"epsg": 2154})
    document = orjson.loads(data)
    assert document["crs"]["properties"]["name"] == "urn:ogc:def:crs:EPSG::2154"
    first = document["features"][0]["geometry"]  # a point in Paris, as Lambert-93 metres
    xs, ys = transform("EPSG:4326", "EPSG:2154", [2.3522], [48.8566])
    assert first["coordinates"] == pytest.approx([xs[0], ys[0]], abs=0.01)
    with pytest.raises(OptionError, match="EPSG"):
        write("geojson", awkward_table(), {"epsg": 999999})


def test_unknown_and_bad_options_are_refused() -> None:
    with pytest.raises(OptionError, match="unknown option"):
        write("geojson", awkward_table(), {"delimiter": ";"})
    with pytest.raises(OptionError, match="timezone"):
        write("geojson", awkward_table(), {"timezone": "Mars/Olympus"})


def test_dataset_without_geometry_is_refused() -> None:
    fmt = REGISTRY.get("geojson")
    with pytest.raises(FormatNotApplicable):
        fmt.check([Field("title", "text"), Field("day", "date")])
    fmt.check(fields_of(awkward_table().schema))
    assert fmt.media_type == "application/geo+json"



def test_many_batches_come_out_in_order_with_the_json_exports_properties() -> None:
    """Batches render on threads: the features keep the records' order, and each one's
    properties are the JSON Lines export's record, byte for byte."""
    table = demo.table(rows=500)
    data, _ = write("geojson", table, {"timezone": "Europe/Paris"}, batch_size=7)
    assert [f["properties"]["event_id"] for f in features(data)] == list(range(1, 501))
    lines, _ = write("jsonl", table.drop_columns(["geo_point_2d"]), {"timezone": "Europe/Paris"}, batch_size=7)
    body = data.removeprefix(HEADER).removesuffix(b"\n]}\n")
    assert [feature.split(b',"properties":', 1)[1][:-1] for feature in body.split(b",\n")] == lines.split(b"\n")[:-1]


def test_abort_stops_without_the_footer() -> None:
    table = awkward_table()
    writer, out = open_writer("geojson", table)
    for batch in table.to_batches(max_chunksize=1):
        writer.write(batch)
    writer.abort()
    assert out.getvalue().startswith(HEADER) and not out.getvalue().endswith(b"]}\n")
