"""domain.resources: sniffing, inferring and reading CSV, GeoJSON, Parquet and XLSX resources
into Arrow batches in exportd's field types, with rejected rows reported. No Redis."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import openpyxl
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import shapely

from domain.errors import Invalid
from domain.fields import ARROW_TYPES, Field, fields_of
from domain.resources import ReadBatch, Rejected, ResourceSpec, infer, read, sniff
from domain.resources import geojson_source

UTC = dt.timezone.utc


def types(fields: list[Field]) -> dict[str, str]:
    return {f.name: f.type for f in fields}


def read_all(path: Path, spec: ResourceSpec, fields: list[Field], batch_rows: int = 65_536) -> tuple[list[dict], list[Rejected], list[ReadBatch]]:
    parts = list(read(path, spec, fields, batch_rows=batch_rows))
    for part in parts:
        assert part.batch.schema.types == [ARROW_TYPES[f.type] for f in fields]
        assert part.batch.schema.names == [f.name for f in fields]
        assert fields_of(part.batch.schema) == fields
    rows = [row for part in parts for row in part.batch.to_pylist()]
    rejected = [r for part in parts for r in part.rejected]
    return rows, rejected, parts


def point(lon: float, lat: float) -> dict:
    return {"lon": lon, "lat": lat}


# -- sniffing ---------------------------------------------------------------------------------


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_sniff_csv_delimiter(tmp_path: Path, delimiter: str) -> None:
    path = tmp_path / "data.csv"
    rows = [["name", "text", "n"], ["a", "x, y; z", "1"], ["b", "p|q", "2"]]
    path.write_text("\n".join(delimiter.join(f'"{v}"' for v in r) for r in rows) + "\n", encoding="utf-8")
    assert sniff(path) == ResourceSpec("csv", {"delimiter": delimiter, "encoding": "utf-8"})


def test_sniff_encodings(tmp_path: Path) -> None:
    latin = tmp_path / "latin.csv"
    latin.write_bytes(("nom;ville\n" + "x;Paris\n" * 20_000 + "é;Orléans\n").encode("latin-1"))
    assert sniff(latin) == ResourceSpec("csv", {"delimiter": ";", "encoding": "cp1252"})  # the é is past the first 64 KiB
    bom = tmp_path / "bom.csv"
    bom.write_bytes("nom,ville\né,Orléans\n".encode("utf-8-sig"))
    assert sniff(bom).params["encoding"] == "utf-8-sig"
    undefined = tmp_path / "c1.csv"
    undefined.write_bytes(b"a,b\n\x81,\xe9\n")  # 0x81 has no cp1252 character
    assert sniff(undefined).params["encoding"] == "latin-1"


def test_sniff_other_types(tmp_path: Path) -> None:
    geo = tmp_path / "upload.bin"
    geo.write_bytes(b'\n  {"type": "FeatureCollection", "features": []}')
    assert sniff(geo).type == "geojson"
    parquet = tmp_path / "noext"
    pq.write_table(pa.table({"a": [1]}), parquet)
    assert sniff(parquet).type == "parquet"
    xlsx = tmp_path / "book.data"
    book = openpyxl.Workbook()
    book.active.append(["a"])
    book.save(xlsx)
    assert sniff(xlsx).type == "xlsx"


# -- CSV --------------------------------------------------------------------------------------

LATIN_CSV = (
    "Nom;Âge;Prix;Date début;Code postal;Drapeau;Réponse\n"
    '"Café ""Le Zinc""\nrue de l\'Église";41;12.50;2024-01-31;01000;1;oui\n'
    "Hôtel;;7;29/02/2024;75001;0;non\n"
    "Crêperie;38;-0.5e1;01/12/2023;;1;\n"
)


def test_csv_semicolon_latin1_with_quoted_newlines(tmp_path: Path) -> None:
    path = tmp_path / "lieux.csv"
    path.write_bytes(LATIN_CSV.encode("latin-1"))
    spec = sniff(path)
    assert spec == ResourceSpec("csv", {"delimiter": ";", "encoding": "cp1252"})
    fields = infer(path, spec)
    assert fields == [
        Field("nom", "text", "Nom"),
        Field("age", "int", "Âge"),
        Field("prix", "double", "Prix"),
        Field("date_debut", "date", "Date début"),
        Field("code_postal", "text", "Code postal"),  # leading zeros: a code, not a number
        Field("drapeau", "int", "Drapeau"),  # 0/1 stays int
        Field("reponse", "boolean", "Réponse"),
    ]
    rows, rejected, _ = read_all(path, spec, fields)
    assert rejected == []
    assert rows == [
        {"nom": 'Café "Le Zinc"\nrue de l\'Église', "age": 41, "prix": 12.5, "date_debut": dt.date(2024, 1, 31),
         "code_postal": "01000", "drapeau": 1, "reponse": True},
        {"nom": "Hôtel", "age": None, "prix": 7.0, "date_debut": dt.date(2024, 2, 29),
         "code_postal": "75001", "drapeau": 0, "reponse": False},
        {"nom": "Crêperie", "age": 38, "prix": -5.0, "date_debut": dt.date(2023, 12, 1),
         "code_postal": None, "drapeau": 1, "reponse": None},
    ]


def test_csv_params_given_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "lieux.txt"
    path.write_bytes(LATIN_CSV.encode("latin-1"))
    spec = ResourceSpec("csv", {"separator": ";", "encoding": "latin-1",
                                "fields": {"Code postal": "int", "drapeau": "boolean", "age": "text", "Prix": "text"}})
    fields = infer(path, spec)
    assert types(fields) == {"nom": "text", "age": "text", "prix": "text", "date_debut": "date",
                             "code_postal": "int", "drapeau": "boolean", "reponse": "boolean"}
    rows, rejected, _ = read_all(path, spec, fields)
    assert rejected == []
    assert [(r["age"], r["prix"], r["code_postal"], r["drapeau"]) for r in rows] == [
        ("41", "12.50", 1000, True), (None, "7", 75001, False), ("38", "-0.5e1", None, True)]


def test_overrides_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(Invalid, match="no field 'c'"):
        infer(path, ResourceSpec("csv", {"fields": {"c": "int"}}))
    with pytest.raises(Invalid, match="unknown type 'number'"):
        infer(path, ResourceSpec("csv", {"fields": {"a": "number"}}))
    with pytest.raises(Invalid, match="no column 'y'"):
        infer(path, ResourceSpec("csv", {"lat_field": "a", "lon_field": "y"}))


GEO_CSV = """\
id,Latitude,lng,position,shape,when,day,naive
1,48.8566,2.3522,"48.8566, 2.3522",POINT (2.3522 48.8566),2024-03-10T12:30:00+01:00,2024-03-10,2024-03-10 12:30:00
2,-33.8688,151.2093,"-33.8688,151.2093","{""type"": ""LineString"", ""coordinates"": [[0, 0], [2, 2]]}",2024-03-10T23:59:59.250Z,10/03/2024,2024-03-10T12:30
3,,,,,2024-03-10T12:30:00-0530,,10/03/2024 08:05
4,0.5,-0.25,"0.5,-0.25","POLYGON ((0 0, 4 0, 4 4, 0 4, 0 0))",2024-03-10,2024-12-31,2024-03-10
"""


def test_csv_geometry_and_time_columns(tmp_path: Path) -> None:
    path = tmp_path / "geo.csv"
    path.write_text(GEO_CSV, encoding="utf-8")
    spec = sniff(path)
    assert spec.params["delimiter"] == ","
    fields = infer(path, spec)
    assert fields == [
        Field("id", "int"), Field("latitude", "double", "Latitude"), Field("lng", "double"),
        Field("position", "geo_point_2d"), Field("shape", "geo_shape"), Field("when", "datetime"),
        Field("day", "date"), Field("naive", "datetime"), Field("geo_point_2d", "geo_point_2d"),
    ]
    rows, rejected, _ = read_all(path, spec, fields)
    assert rejected == []
    assert [r["latitude"] for r in rows] == [48.8566, -33.8688, None, 0.5]
    assert [r["lng"] for r in rows] == [2.3522, 151.2093, None, -0.25]
    assert [r["position"] for r in rows] == [point(2.3522, 48.8566), point(151.2093, -33.8688), None, point(-0.25, 0.5)]
    assert [r["geo_point_2d"] for r in rows] == [point(2.3522, 48.8566), point(151.2093, -33.8688), None, point(-0.25, 0.5)]
    shapes = [None if r["shape"] is None else shapely.from_wkb(r["shape"]) for r in rows]
    assert shapes[0].equals(shapely.Point(2.3522, 48.8566))
    assert shapes[1].equals(shapely.LineString([(0, 0), (2, 2)]))
    assert shapes[2] is None
    assert shapes[3].equals(shapely.box(0, 0, 4, 4))
    assert [r["when"] for r in rows] == [
        dt.datetime(2024, 3, 10, 11, 30, tzinfo=UTC),
        dt.datetime(2024, 3, 10, 23, 59, 59, 250_000, tzinfo=UTC),
        dt.datetime(2024, 3, 10, 18, 0, tzinfo=UTC),
        dt.datetime(2024, 3, 10, 0, 0, tzinfo=UTC),
    ]
    assert [r["day"] for r in rows] == [dt.date(2024, 3, 10), dt.date(2024, 3, 10), None, dt.date(2024, 12, 31)]
    assert [r["naive"] for r in rows] == [  # naive: taken as UTC
        dt.datetime(2024, 3, 10, 12, 30, tzinfo=UTC), dt.datetime(2024, 3, 10, 12, 30, tzinfo=UTC),
        dt.datetime(2024, 3, 10, 8, 5, tzinfo=UTC), dt.datetime(2024, 3, 10, tzinfo=UTC)]


def test_csv_lat_lon_params_and_pair_refused_when_not_points(tmp_path: Path) -> None:
    path = tmp_path / "pair.csv"
    path.write_text("y_wgs84;x_wgs84;lat;lon\n45.5;4.25;100;1\n")
    fields = infer(path, ResourceSpec("csv", {}))
    assert "geo_point_2d" not in types(fields)  # lat 100 is no latitude: no point from names alone
    spec = ResourceSpec("csv", {"lat_field": "y_wgs84", "lon_field": "x_wgs84"})
    fields = infer(path, spec)
    assert types(fields)["geo_point_2d"] == "geo_point_2d"
    rows, rejected, _ = read_all(path, spec, fields)
    assert rejected == [] and rows[0]["geo_point_2d"] == point(4.25, 45.5)


def test_csv_rejected_rows(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(
        "name,count,price,day,stamp,lat,lon,place,shape,flag\n"                      # line 1
        "ok,1,1.5,2024-01-01,2024-01-01T00:00:00Z,45,5,\"45,5\",POINT (5 45),yes\n"  # 2
        "count,x1,1.5,2024-01-01,,,,,,\n"                                              # 3
        '"multi\nline",2,abc,2024-02-30,,,,,,\n'                                       # 4-5
        "too,few\n"                                                                    # 6
        "pair,3,,,,91,5,,,\n"                                                          # 7
        "half,4,,,,45,,,,\n"                                                           # 8
        "geo,5,,,,,,\"95,5\",\"POINT (5,no\",\n"                                      # 9
        "when,6,,31/02/2024,yesterday,,,,,maybe\n"                                     # 10
        "last,7,2,,,,,,,no\n",                                                         # 11
        encoding="utf-8")
    spec = ResourceSpec("csv", {})
    fields = [Field("name", "text"), Field("count", "int"), Field("price", "double"), Field("day", "date"),
              Field("stamp", "datetime"), Field("place", "geo_point_2d"), Field("shape", "geo_shape"),
              Field("flag", "boolean"), Field("geo_point_2d", "geo_point_2d")]
    rows, rejected, _ = read_all(path, spec, fields)
    assert [r["name"] for r in rows] == ["ok", "last"]
    assert rows[0] == {"name": "ok", "count": 1, "price": 1.5, "day": dt.date(2024, 1, 1),
                       "stamp": dt.datetime(2024, 1, 1, tzinfo=UTC), "place": point(5.0, 45.0),
                       "shape": shapely.to_wkb(shapely.Point(5, 45)), "flag": True, "geo_point_2d": point(5.0, 45.0)}
    assert rows[1] == {"name": "last", "count": 7, "price": 2.0, "day": None, "stamp": None, "place": None,
                       "shape": None, "flag": False, "geo_point_2d": None}
    assert [r.row_number for r in rejected] == [3, 4, 6, 7, 8, 9, 10]
    why = {r.row_number: r.reason for r in rejected}
    assert why[3] == "count: 'x1' is not an integer"
    assert why[4].startswith("price: 'abc' is not a number; day: '2024-02-30' is not a date")
    assert why[6] == "2 values where the header has 10"
    assert why[7].startswith("geo_point_2d: lat '91' and lon '5' are not a point")
    assert why[8].startswith("geo_point_2d: lat '45' and lon (empty) are not a point")
    assert why[9].startswith("place: '95,5' is not \"lat,lon\"") and "shape: 'POINT (5,no' is not a geometry" in why[9]
    assert why[10].startswith("day: '31/02/2024' is not a date") and "stamp: 'yesterday' is not an ISO 8601" in why[10]
    assert why[10].endswith("flag: 'maybe' is not true/false, yes/no, oui/non, vrai/faux or 1/0")


def test_csv_missing_field_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(Invalid, match="no column for field 'c'"):
        list(read(path, ResourceSpec("csv", {}), [Field("a", "int"), Field("c", "int")]))


def test_csv_header_row_and_no_header(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("exported 2024-01-01\n\nA,B\n1,x\n2,y\n")
    spec = ResourceSpec("csv", {"delimiter": ",", "header_row": 2})
    fields = infer(path, spec)
    assert fields == [Field("a", "int", "A"), Field("b", "text", "B")]
    rows, rejected, _ = read_all(path, spec, fields)
    assert rows == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}] and rejected == []
    bare = tmp_path / "b.csv"
    bare.write_text("1,x\n2,y\n")
    spec = ResourceSpec("csv", {"header_row": 0})
    fields = infer(bare, spec)
    assert fields == [Field("column_1", "int"), Field("column_2", "text")]
    assert read_all(bare, spec, fields)[0] == [{"column_1": 1, "column_2": "x"}, {"column_1": 2, "column_2": "y"}]


def test_csv_inference_edges(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text(
        "big,id,pairs,mixed,json,empty,Empty,moment\n"
        "12345678901234567890,1,\"1,2\",2024-01-01,\"{\"\"a\"\": 1}\",,,2024-01-01\n"
        "1,2,\"3,4\",2024-01-01T10:00:00,\"{\"\"a\"\": 2}\",,,2024-01-01T10:00:00+00:00\n")
    fields = infer(path, ResourceSpec("csv", {}))
    assert fields == [
        Field("big", "text"),        # beyond int64 and beyond a double's digits: text
        Field("id", "int"),
        Field("pairs", "text"),      # two integers are no coordinates
        Field("mixed", "datetime"),  # a date is a datetime at midnight
        Field("json", "text"),       # JSON that is no geometry
        Field("empty", "text"),
        Field("empty_2", "text", "Empty"),
        Field("moment", "datetime"),
    ]


def test_csv_streamed_in_batches(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    with open(path, "w", encoding="utf-8") as f:
        f.write("n;half;label\n")
        for i in range(2_500):
            f.write(f"{i};{i / 2};\"row\n{i}\"\n" if i != 1_234 else f"{i};nope;x\n")
    spec = sniff(path)
    fields = infer(path, spec, sample_rows=100)
    assert types(fields) == {"n": "int", "half": "double", "label": "text"}
    rows, rejected, parts = read_all(path, spec, fields, batch_rows=1_000)
    assert len(parts) == 3
    assert [p.batch.num_rows for p in parts] == [1_000, 999, 500]
    assert [r["n"] for r in rows] == [i for i in range(2_500) if i != 1_234]
    assert all(r["half"] == r["n"] / 2 and r["label"] == f"row\n{r['n']}" for r in rows)
    assert rejected == [Rejected(2 + 2 * 1_234, "half: 'nope' is not a number")]  # two lines per record before it


# -- GeoJSON ----------------------------------------------------------------------------------

FEATURES = [
    {"type": "Feature", "properties": {"name": "point {\"quoted\"} [x]", "n": 1, "ok": True, "tags": ["a", "b"]},
     "geometry": {"type": "Point", "coordinates": [2.35, 48.85]}},
    {"type": "Feature", "properties": {"name": "line \\ back", "n": 2, "ok": False, "when": "2024-05-01T08:00:00+02:00"},
     "geometry": {"type": "LineString", "coordinates": [[0, 0], [4, 0]]}},
    {"type": "Feature", "properties": {"name": "square", "n": 3, "meta": {"features": [1]}},
     "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [2, 0], [2, 2], [0, 2], [0, 0]]]}},
    {"type": "Feature", "properties": {"name": "islands", "n": 4, "parts": [{"part": i} for i in range(40)]},
     "geometry": {"type": "MultiPolygon", "coordinates": [[[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]],
                                                           [[[2, 0], [3, 0], [3, 1], [2, 1], [2, 0]]]]}},
    {"type": "Feature", "properties": {"name": "nowhere", "n": None}, "geometry": None},
]


def write_geojson(path: Path, features: list[dict], **extra: object) -> None:
    collection = {"type": "FeatureCollection", "name": "test", "bbox": [0, 0, 4, 48.85], **extra, "features": features}
    path.write_bytes(orjson.dumps(collection, option=orjson.OPT_INDENT_2))


@pytest.mark.parametrize("read_size", [7, 1 << 20])
def test_geojson_mixed_geometries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, read_size: int) -> None:
    monkeypatch.setattr(geojson_source, "_READ", read_size)  # 7: features cut across many reads
    path = tmp_path / "places.geojson"
    write_geojson(path, FEATURES, after={"features": "not these"})
    spec = sniff(path)
    assert spec == ResourceSpec("geojson", {})
    fields = infer(path, spec)
    assert fields == [Field("name", "text"), Field("n", "int"), Field("ok", "boolean"), Field("tags", "text"),
                      Field("when", "datetime"), Field("meta", "text"), Field("parts", "text"),
                      Field("geo_point_2d", "geo_point_2d"), Field("geo_shape", "geo_shape")]
    rows, rejected, _ = read_all(path, spec, fields)
    assert rejected == []
    assert [r["name"] for r in rows] == ['point {"quoted"} [x]', "line \\ back", "square", "islands", "nowhere"]
    assert [r["n"] for r in rows] == [1, 2, 3, 4, None]
    assert [r["ok"] for r in rows] == [True, False, None, None, None]
    assert [r["tags"] for r in rows] == ['["a","b"]', None, None, None, None]
    assert [r["meta"] for r in rows] == [None, None, '{"features":[1]}', None, None]
    assert orjson.loads(rows[3]["parts"]) == FEATURES[3]["properties"]["parts"]  # past 32 candidate ends
    assert rows[1]["when"] == dt.datetime(2024, 5, 1, 6, tzinfo=UTC)
    for row, feature in zip(rows, FEATURES):
        if feature["geometry"] is None:
            assert row["geo_shape"] is None and row["geo_point_2d"] is None
        else:
            shape = shapely.geometry.shape(feature["geometry"])
            assert shapely.from_wkb(row["geo_shape"]).equals(shape)
    assert [r["geo_point_2d"] for r in rows] == [point(2.35, 48.85), point(2.0, 0.0), point(1.0, 1.0), point(1.5, 0.5), None]


def test_geojson_rejected_and_streamed(tmp_path: Path) -> None:
    features = [{"type": "Feature", "properties": {"i": i, "v": "x" if i == 7 else str(i)},
                 "geometry": {"type": "Point", "coordinates": [i, i]}} for i in range(25)]
    features[12]["geometry"] = {"type": "Point", "coordinates": "nope"}
    path = tmp_path / "many.json"
    write_geojson(path, features)
    spec = ResourceSpec("geojson", {"fields": {"v": "int"}})
    fields = infer(path, spec, sample_rows=5)
    assert types(fields) == {"i": "int", "v": "int", "geo_point_2d": "geo_point_2d", "geo_shape": "geo_shape"}
    rows, rejected, parts = read_all(path, spec, fields, batch_rows=10)
    assert len(parts) == 3
    assert [r["i"] for r in rows] == [i for i in range(25) if i not in (7, 12)]
    assert all(r["v"] == r["i"] and r["geo_point_2d"] == point(r["i"], r["i"]) for r in rows)
    assert rejected == [Rejected(8, "v: 'x' is not an integer"), Rejected(13, "the geometry is not valid GeoJSON")]


def test_geojson_cut_short_or_not_json(tmp_path: Path) -> None:
    path = tmp_path / "cut.geojson"
    write_geojson(path, FEATURES)
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(Invalid, match="ends before its features are closed"):
        list(read(path, ResourceSpec("geojson", {}), [Field("name", "text")]))
    path.write_bytes(b'{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"a": tru}}]}')
    with pytest.raises(Invalid, match="not valid JSON"):
        infer(path, ResourceSpec("geojson", {}))


def test_geojson_single_feature_and_bare_geometry(tmp_path: Path) -> None:
    feature = tmp_path / "one.geojson"
    feature.write_bytes(orjson.dumps(FEATURES[2]))
    fields = infer(feature, ResourceSpec("geojson", {}))
    rows, _, _ = read_all(feature, ResourceSpec("geojson", {}), fields)
    assert [(r["name"], r["geo_point_2d"]) for r in rows] == [("square", point(1.0, 1.0))]
    bare = tmp_path / "bare.geojson"
    bare.write_bytes(orjson.dumps(FEATURES[0]["geometry"]))
    fields = infer(bare, ResourceSpec("geojson", {}))
    assert types(fields) == {"geo_point_2d": "geo_point_2d", "geo_shape": "geo_shape"}
    rows, _, _ = read_all(bare, ResourceSpec("geojson", {}), fields)
    assert rows[0]["geo_point_2d"] == point(2.35, 48.85)


# -- Parquet ----------------------------------------------------------------------------------


def test_parquet_typed_and_text_columns(tmp_path: Path) -> None:
    n = 2_500
    table = pa.table({
        "id": pa.array(range(n), pa.int32()),
        "ratio": pa.array([i / 4 for i in range(n)], pa.float32()),
        "Code INSEE": pa.array([f"{i:05d}" for i in range(n)]),
        "count as text": pa.array([str(i) if i % 3 else None for i in range(n)]),
        "seen": pa.array([dt.datetime(2024, 1, 1) + dt.timedelta(minutes=i) for i in range(n)], pa.timestamp("ns")),
        "paris": pa.array([dt.datetime(2024, 1, 1, tzinfo=UTC) for _ in range(n)], pa.timestamp("ms", tz="Europe/Paris")),
        "day": pa.array([dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(n)], pa.date32()),
        "flag": pa.array([i % 2 == 0 for i in range(n)]),
        "where": pa.array([{"lat": 1.0, "lon": 2.0}] * n, pa.struct([("lat", pa.float64()), ("lon", pa.float64())])),
        "shape": pa.array([shapely.to_wkb(shapely.Point(i, 1)) for i in range(n)], pa.binary()),
    })
    path = tmp_path / "data.parquet"
    pq.write_table(table, path, row_group_size=1_000)
    spec = sniff(path)
    fields = infer(path, spec)
    assert fields == [Field("id", "int"), Field("ratio", "double"), Field("code_insee", "text", "Code INSEE"),
                      Field("count_as_text", "int", "count as text"), Field("seen", "datetime"), Field("paris", "datetime"),
                      Field("day", "date"), Field("flag", "boolean"), Field("where", "geo_point_2d"), Field("shape", "geo_shape")]
    rows, rejected, parts = read_all(path, spec, fields, batch_rows=1_000)
    assert rejected == [] and len(parts) == 3
    source = table.to_pylist()
    for row, src in zip(rows, source, strict=True):
        assert row["id"] == src["id"] and row["ratio"] == src["ratio"] and row["code_insee"] == src["Code INSEE"]
        assert row["count_as_text"] == (None if src["count as text"] is None else int(src["count as text"]))
        assert row["seen"] == src["seen"].replace(tzinfo=UTC)
        assert row["paris"] == dt.datetime(2024, 1, 1, tzinfo=UTC)
        assert row["day"] == src["day"] and row["flag"] == src["flag"]
        assert row["where"] == point(2.0, 1.0) and row["shape"] == src["shape"]


def test_parquet_exportd_fields_kept_and_rejects(tmp_path: Path) -> None:
    table = pa.table({"code": ["1", "2", "x"], "n": [1, 2, 3]})
    described = [Field("code", "text", "Code commune"), Field("n", "int", "Nombre")]
    from domain.fields import with_fields
    path = tmp_path / "version.parquet"
    pq.write_table(table.replace_schema_metadata(with_fields(table.schema, described).metadata), path)
    assert infer(path, ResourceSpec("parquet", {})) == described
    spec = ResourceSpec("parquet", {"fields": {"code": "int"}})
    fields = infer(path, spec)
    rows, rejected, _ = read_all(path, spec, fields)
    assert rows == [{"code": 1, "n": 1}, {"code": 2, "n": 2}]
    assert rejected == [Rejected(3, "code: 'x' is not an integer")]


# -- XLSX -------------------------------------------------------------------------------------


def write_xlsx(path: Path) -> None:
    book = openpyxl.Workbook()
    book.active.title = "notes"
    book.active.append(["not this sheet"])
    sheet = book.create_sheet("data")
    sheet.append(["Commune", "Population", "Surface km²", "Créée le", "Mise à jour", "Capitale", "Latitude", "Longitude"])
    sheet.append(["Paris", 2_133_111, 105.4, dt.date(1790, 3, 4), dt.datetime(2024, 1, 2, 3, 4, 5), True, 48.8566, 2.3522])
    sheet.append(["Lyon", 522_250, 47.87, dt.date(1790, 3, 4), dt.datetime(2024, 1, 2, 3, 4, 6), False, 45.764, 4.8357])
    sheet.append([None] * 8)  # an empty row: skipped
    sheet.append(["Nulle part", "many", None, None, None, None, None, None])  # sheet row 5
    sheet.append(["Marseille", 873_076, 240.62, dt.date(1790, 3, 4), None, False, 43.2965, 5.3698, "stray"])  # row 6
    sheet.append(["Arles", 50_454, 758.93, None, dt.datetime(2024, 1, 2, 3, 4, 7), None, 43.6768, 4.6303])
    book.save(path)


def test_xlsx_sheet_read_only(tmp_path: Path) -> None:
    path = tmp_path / "communes.xlsx"
    write_xlsx(path)
    spec = ResourceSpec("xlsx", {"sheet": "data", "fields": {"Population": "int"}})
    fields = infer(path, spec)
    assert fields == [Field("commune", "text", "Commune"), Field("population", "int", "Population"),
                      Field("surface_km2", "double", "Surface km²"), Field("creee_le", "date", "Créée le"),
                      Field("mise_a_jour", "datetime", "Mise à jour"), Field("capitale", "boolean", "Capitale"),
                      Field("latitude", "double", "Latitude"), Field("longitude", "double", "Longitude"),
                      Field("geo_point_2d", "geo_point_2d")]
    rows, rejected, parts = read_all(path, spec, fields, batch_rows=2)
    assert [p.batch.num_rows for p in parts] == [2, 1]  # rows 2-3, then rows 5 (rejected), 7
    assert rows == [
        {"commune": "Paris", "population": 2_133_111, "surface_km2": 105.4, "creee_le": dt.date(1790, 3, 4),
         "mise_a_jour": dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), "capitale": True, "latitude": 48.8566,
         "longitude": 2.3522, "geo_point_2d": point(2.3522, 48.8566)},
        {"commune": "Lyon", "population": 522_250, "surface_km2": 47.87, "creee_le": dt.date(1790, 3, 4),
         "mise_a_jour": dt.datetime(2024, 1, 2, 3, 4, 6, tzinfo=UTC), "capitale": False, "latitude": 45.764,
         "longitude": 4.8357, "geo_point_2d": point(4.8357, 45.764)},
        {"commune": "Arles", "population": 50_454, "surface_km2": 758.93, "creee_le": None,
         "mise_a_jour": dt.datetime(2024, 1, 2, 3, 4, 7, tzinfo=UTC), "capitale": None, "latitude": 43.6768,
         "longitude": 4.6303, "geo_point_2d": point(4.6303, 43.6768)},
    ]
    assert rejected == [Rejected(5, "population: 'many' is not an integer"),
                        Rejected(6, "values beyond the header's 8 columns")]


def test_xlsx_first_sheet_by_default_and_unknown_sheet(tmp_path: Path) -> None:
    path = tmp_path / "communes.xlsx"
    write_xlsx(path)
    assert infer(path, ResourceSpec("xlsx", {})) == [Field("not_this_sheet", "text", "not this sheet")]
    with pytest.raises(Invalid, match="no sheet 'other'"):
        infer(path, ResourceSpec("xlsx", {"sheet": "other"}))
