"""FlatGeobuf, KML and GPX, each read back with Fiona and compared with the sample tables."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import fiona
import pytest
import shapely

from domain.fields import Field
from formats import REGISTRY, FormatNotApplicable, OptionError
from tests.formats.gdal_helpers import expected_records, fail_halfway, write_to_full_disk
from tests.formats.samples import awkward_table, empty_table, null_table, write

FIELDS = ["title", "attendance", "price", "free", "day", "starts_at", "category", "organiser_name", "organiser_name_2"]


@pytest.fixture(autouse=True)
def kml_readable(monkeypatch):
    monkeypatch.setitem(fiona.supported_drivers, "KML", "r")


def read(data: bytes, tmp_path, ext: str, layer: str | None = None):
    path = tmp_path / f"out.{ext}"
    path.write_bytes(data)
    with fiona.open(path, layer=layer) as src:
        return src.schema, src.crs, list(src)


def same_shape(geometry, want) -> None:
    if want is None:
        assert geometry is None
    else:
        assert shapely.hausdorff_distance(shapely.geometry.shape(geometry), want) < 1e-5


def test_fgb_round_trip(tmp_path):
    data, writer = write("fgb", awkward_table())
    schema, crs, features = read(data, tmp_path, "fgb")
    assert crs.to_epsg() == 4326 and list(schema["properties"]) == FIELDS
    wanted = [r for r in expected_records() if r["shape"] is not None]
    assert len(features) == len(wanted) == 5 and writer.skipped == 1
    for feature, want in zip(sorted(features, key=lambda f: f.properties["attendance"]),
                             sorted(wanted, key=lambda r: r["attendance"])):
        # FlatGeobuf has no date type: GDAL keeps dates as datetimes at midnight
        want = {**want, "day": want["day"] and want["day"] + "T00:00:00"}
        assert dict(feature.properties) == {k: want[k] for k in FIELDS}
        same_shape(feature.geometry, want["shape"])


def test_fgb_without_index_keeps_null_geometries_and_reprojects(tmp_path):
    data, writer = write("fgb", awkward_table(), {"spatial_index": False, "epsg": 2154, "timezone": "America/New_York"})
    _, crs, features = read(data, tmp_path, "fgb")
    assert crs.to_epsg() == 2154 and writer.skipped == 0 and len(features) == 6
    assert features[3].geometry is None
    assert features[0].properties["starts_at"] == "2024-06-21T14:30:00-04:00"
    x, y = features[0].geometry.coordinates
    assert (x, y) == pytest.approx((652469.02, 6862035.26), abs=0.1)


KML = "{http://www.opengis.net/kml/2.2}"


def placemarks(data: bytes) -> list[dict[str, str | None]]:
    """Each placemark's name and ExtendedData, read with ElementTree (GDAL's KML reader skips both)."""
    out = []
    for mark in ET.fromstring(data).iter(f"{KML}Placemark"):
        record = {d.get("name"): d.text for d in mark.iter(f"{KML}SimpleData")}
        record["<name>"] = mark.findtext(f"{KML}name")
        out.append(record)
    return out


def test_kml_round_trip(tmp_path):
    data, writer = write("kml", awkward_table())
    marks = placemarks(data)
    assert len(marks) == 6 and writer.skipped == 0
    for mark, want in zip(marks, expected_records()):
        assert mark.pop("<name>") == want["title"]
        expected = {}
        for name in FIELDS[1:]:
            value = want[name]
            if value is not None:
                expected[name] = str(int(value)) if isinstance(value, bool) else str(value)
        assert float(mark.pop("price", "nan")) == pytest.approx(float(expected.pop("price", "nan")), nan_ok=True)
        assert mark == expected
    _, _, features = read(data, tmp_path, "kml")  # GDAL reads back the placemarks with a geometry
    # names checked above with ElementTree: GDAL's reader folds the newline in 'line one\nline two'
    assert len(features) == 5
    for feature, want in zip(features, [r for r in expected_records() if r["shape"]]):
        same_shape(feature.geometry, want["shape"])


def test_kml_name_field_option_and_wgs84_only(tmp_path):
    data, _ = write("kml", awkward_table(), {"name_field": "category"})
    marks = placemarks(data)
    assert [m["<name>"] for m in marks] == ["music", "talk", "music", None, "sport", "talk"]
    assert marks[0]["title"] == "Fête de la musique" and "category" not in marks[0]
    with pytest.raises(OptionError):
        write("kml", awkward_table(), {"epsg": 3857})
    with pytest.raises(OptionError):
        write("kml", awkward_table(), {"name_field": "nope"})


def test_gpx_waypoints_with_options(tmp_path):
    options = {"name_field": "category", "description_field_list": "title,day", "use_extension": True,
               "timezone": "Asia/Tokyo"}
    data, writer = write("gpx", awkward_table(), options)
    _, _, features = read(data, tmp_path, "gpx", layer="waypoints")
    wanted = [r for r in expected_records() if r["point"] is not None]
    assert len(features) == 5 and writer.skipped == 1
    assert writer.warnings == ["1 record(s) skipped: no point geometry for a waypoint"]
    for feature, want in zip(features, wanted):
        assert feature.geometry.coordinates == pytest.approx(want["point"], abs=1e-5)
        assert feature.properties["name"] == want["category"]
        assert feature.properties["desc"] == f"title: {want['title']}\nday: {want['day']}"
        assert feature.properties["ogr_organiser_name_2"] == want["organiser_name_2"]  # GDAL reads <extensions> as ogr_*
        # GDAL's GPX reader types this column int32 and clamps 2**40: check the file itself
        assert f"<ogr:attendance>{want['attendance']}</ogr:attendance>" in data.decode()
    assert features[0].properties["ogr_starts_at"] == "2024-06-22T03:30:00+09:00"


def test_gpx_from_shapes_keeps_points_only(tmp_path):
    data, writer = write("gpx", awkward_table().drop_columns(["geo_point_2d"]))
    _, _, features = read(data, tmp_path, "gpx", layer="waypoints")
    assert [f.properties["name"] for f in features] == ["Fête de la musique", "東京 イベント"]
    assert writer.skipped == 4
    assert "ogr_attendance" not in features[0].properties  # no extensions by default


@pytest.mark.parametrize("name,ext", [("fgb", "fgb"), ("kml", "kml"), ("gpx", "gpx")])
def test_empty_and_null_tables(tmp_path, name, ext):
    layer = "waypoints" if name == "gpx" else None
    data, _ = write(name, empty_table())
    assert read(data, tmp_path, ext, layer)[2] == []
    data, writer = write(name, null_table())
    features = read(data, tmp_path, ext, layer)[2]
    if name == "kml":
        assert len(placemarks(data)) == 2 and features == []  # GDAL's reader skips placemarks without geometry
    else:
        assert features == [] and writer.skipped == 2


@pytest.mark.parametrize("name", ["shp", "fgb", "kml", "gpx"])
def test_refuse_datasets_without_geometry(name):
    fmt = REGISTRY.get(name)
    assert fmt.binary == (name in ("shp", "fgb"))
    with pytest.raises(FormatNotApplicable):
        fmt.check([Field("title", "text"), Field("n", "int")])


@pytest.mark.parametrize("name", ["shp", "fgb", "kml", "gpx"])
def test_temporary_files_removed_on_error(tmp_path, monkeypatch, name):
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    if name != "gpx":  # gpx takes its position from geo_point_2d, which cannot be broken
        with pytest.raises(shapely.errors.GEOSException):
            fail_halfway(name, awkward_table())
        assert list(tmp_path.iterdir()) == []
    with pytest.raises(OSError, match="disk full"):
        write_to_full_disk(name, awkward_table())
    assert list(tmp_path.iterdir()) == []
    write(name, awkward_table())
    assert list(tmp_path.iterdir()) == []


GPX = "{http://www.topografix.com/GPX/1/1}"
OGR = "{http://osgeo.org/gdal}"


def waypoints(data: bytes) -> list[dict[str, str | None]]:
    """Each waypoint's position, name, desc and extensions, read with ElementTree (a strict XML
    parser: a character XML 1.0 cannot hold, or a bad escape, fails here)."""
    out = []
    for wpt in ET.fromstring(data).iter(f"{GPX}wpt"):
        record = {"lat": wpt.get("lat"), "lon": wpt.get("lon"), "<name>": wpt.findtext(f"{GPX}name"),
                  "<desc>": wpt.findtext(f"{GPX}desc")}
        record.update({e.tag.removeprefix(OGR): e.text for e in wpt.iterfind(f"{GPX}extensions/*")})
        out.append(record)
    return out


def test_gpx_awkward_text_numbers_and_positions(tmp_path):
    import math
    from datetime import datetime, timezone

    import pyarrow as pa

    from domain.fields import DATETIME, GEO_POINT
    from tests.formats.samples import write as write_table
    names = ['<b>Tom & "Jerry"</b> \'s', "bell\x07 vtab\x0b ff\x0c end", "crlf\r\nline", "Ünïcødé 東京 🎉", None, "skipped"]
    table = pa.table({
        "name": names,
        "n": pa.array([-(2**62), 2**62, 0, None, -1, 1], pa.int64()),
        "x": pa.array([math.nan, -1e300, 1e-7, None, -0.5, 1.0], pa.float64()),
        "when": pa.array([datetime(1950, 6, 1, 12, 0, tzinfo=timezone.utc), None,
                          datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=timezone.utc),
                          datetime(2024, 3, 31, 1, 0, tzinfo=timezone.utc), None, None], DATETIME),
        "2nd <field>": ["a&b", None, "c", None, None, None],
        "where": pa.array([{"lon": 2.3522, "lat": 48.8566}, {"lon": -180.0, "lat": -90.0}, {"lon": 1e-7, "lat": -1e-9},
                           {"lon": 179.9999999, "lat": 89.5}, {"lon": 0.0, "lat": 0.0}, {"lon": math.nan, "lat": 1.0}],
                          GEO_POINT),
    })
    data, writer = write_table("gpx", table, {"use_extension": True, "description_field_list": "name,when",
                                              "timezone": "Europe/Paris"})
    marks = waypoints(data)
    assert len(marks) == 5 and writer.skipped == 1  # NaN longitude: no waypoint
    assert b"<metadata>" not in data  # bounds would come before the first waypoint: a stream cannot know them
    assert all(b"e" not in n for n in re.findall(rb'<wpt lat="([^"]*)" lon="([^"]*)"', data)[0])  # xsd:decimal
    assert [(float(m["lon"]), float(m["lat"])) for m in marks] == [
        (2.3522, 48.8566), (-180.0, -90.0), (1e-7, -1e-9), (179.9999999, 89.5), (0.0, 0.0)]
    assert [m["<name>"] for m in marks] == [names[0], "bell vtab ff end", "crlf\r\nline", names[3], None]
    assert marks[0]["<desc>"] == f"name: {names[0]}\nwhen: 1950-06-01T13:00:00.000000+01:00"  # a batch with a fraction
    assert marks[2]["<desc>"] == "name: crlf\r\nline\nwhen: 1970-01-01T00:59:59.500000+01:00"
    assert marks[4]["<desc>"] is None
    assert [(m.get("n"), m.get("x"), m.get("_2nd__field_")) for m in marks] == [
        (str(-(2**62)), "nan", "a&b"), (str(2**62), "-1e+300", None), ("0", "1e-7", "c"), (None, None, None), ("-1", "-0.5", None)]
    assert marks[3]["when"] == "2024-03-31T03:00:00.000000+02:00" and "when" not in marks[4]
    _, _, features = read(data, tmp_path, "gpx", layer="waypoints")  # GDAL's reader agrees
    assert [f.properties["name"] for f in features] == [names[0], "bell vtab ff end", "crlf\r\nline", names[3], None]
    assert [f.geometry.coordinates for f in features][2] == pytest.approx((1e-7, -1e-9), abs=1e-12)
    assert features[0].properties["ogr__2nd__field_"] == "a&b"


def test_gpx_is_streamed_without_temporary_files(tmp_path, monkeypatch):
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    data, _ = write("gpx", awkward_table(), batch_size=1)
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<gpx version="1.1" creator="exportd"')
    assert data.endswith(b"</wpt>\n</gpx>\n") and list(tmp_path.iterdir()) == []
    assert [m["<name>"] for m in waypoints(data)] == [r["title"] for r in expected_records() if r["point"]]
