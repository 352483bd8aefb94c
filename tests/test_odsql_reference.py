"""The functions of the platform's ODSQL reference (aggregates, group_by ranges and date parts,
now() and date parts in where) against DuckDB asked the same question of the same rows, values
and types compared, nulls included; the geometry filters against shapely on the raw rows."""
from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
import shapely

from domain import demo, odsql
from domain.fields import Field
from domain.odsql import cost, values
from domain.odsql.errors import ODSQLError

FIELDS = demo.FIELDS + [Field("shape", "geo_shape", "Shape")]
NULL_EVERY = {"attendance": 11, "price": 13, "event_date": 17, "starts_at": 19, "city": 23, "shape": 9}


def _shapes(points: list[dict | None], rng: random.Random) -> list[bytes | None]:
    """A polygon, a line or a point about each record's place."""
    out: list[bytes | None] = []
    for point in points:
        if point is None:
            out.append(None)
            continue
        x, y, size = point["lon"], point["lat"], rng.choice([0.001, 0.01, 0.05])
        kind = rng.random()
        if kind < 0.5:
            geometry = shapely.box(x - size, y - size, x + size, y + size)
        elif kind < 0.8:
            geometry = shapely.LineString([(x - size, y), (x + size, y + size)])
        else:
            geometry = shapely.Point(x, y)
        out.append(shapely.to_wkb(geometry))
    return out


def build_table() -> pa.Table:
    rng = random.Random(20)
    table = demo.table(rows=2000)
    rows = table.num_rows
    # seconds and microseconds, which the demo's starts_at lack, for second() and millisecond()
    jitter = pa.array([timedelta(seconds=rng.randrange(60), microseconds=rng.randrange(1_000_000)) for _ in range(rows)],
                      pa.duration("us"))
    table = table.set_column(table.schema.get_field_index("starts_at"), "starts_at",
                             pc.add(table["starts_at"], jitter))
    table = table.append_column(pa.field("shape", pa.binary()),
                                pa.array(_shapes(table["geo_point_2d"].to_pylist(), rng), pa.binary()))
    for name, every in NULL_EVERY.items():
        index = table.schema.get_field_index(name)
        mask = pa.array([i % every == 3 for i in range(rows)])
        table = table.set_column(index, table.schema.field(index), pc.if_else(mask, pa.nulls(rows, table[name].type),
                                                                              table[name]))
    return table


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    table = build_table()
    path = tmp_path_factory.mktemp("reference") / "events.parquet"
    pq.write_table(table, path, row_group_size=256)
    connection = duckdb.connect()
    connection.register("t", table)
    return pads.dataset(path), connection, table


def kind(arrow_type: pa.DataType) -> str:
    """The ODSQL type a result column has: DuckDB sums integers into 128 bits (a decimal of
    scale 0 in Arrow), which is an int as ours is."""
    if pa.types.is_integer(arrow_type) or (pa.types.is_decimal(arrow_type) and arrow_type.scale == 0):
        return "int"
    if pa.types.is_floating(arrow_type):
        return "double"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "text"
    return str(arrow_type)


def same(ours: pa.Table, theirs: pa.Table, sort: bool = True) -> None:
    """Equal column types (as ODSQL types) and equal rows, floats to 1e-9 relative, nulls as nulls."""
    assert ours.num_columns == theirs.num_columns
    for mine, other in zip(ours.schema, theirs.schema):
        assert kind(mine.type) == kind(other.type), (mine, other)
    a = [tuple(r.values()) for r in ours.to_pylist()]
    b = [tuple(int(v) if hasattr(v, "as_integer_ratio") and not isinstance(v, float) else v for v in r.values())
         for r in theirs.to_pylist()]
    if sort:
        key = lambda row: tuple((v is None, v if v is not None else 0) for v in row)  # noqa: E731
        a, b = sorted(a, key=key), sorted(b, key=key)
    assert len(a) == len(b) and len(a) > 0
    for x, y in zip(a, b):
        assert len(x) == len(y) and all(v == pytest.approx(w, rel=1e-9, abs=1e-9) if isinstance(w, float) else v == w
                                        for v, w in zip(x, y)), (x, y)


def duck(connection, sql: str) -> pa.Table:
    return connection.sql(sql).to_arrow_table()


AGGREGATES = [
    ("count(*)", "count(*)"),
    ("count(attendance)", "count(attendance)"),
    ("count(distinct city)", "count(DISTINCT city)"),
    ("count(distinct attendance)", "count(DISTINCT attendance)"),
    ("sum(attendance)", "sum(attendance)"),
    ("sum(price)", "sum(price)"),
    ("avg(attendance)", "avg(attendance)"),
    ("min(price)", "min(price)"),
    ("max(attendance)", "max(attendance)"),
    ("min(event_date)", "min(event_date)"),
    ("max(city)", "max(city)"),
    ("median(attendance)", "median(attendance)"),
    ("median(price)", "median(price)"),
    ("percentile(attendance, 0)", "quantile_cont(attendance, 0.0)"),
    ("percentile(price, 10)", "quantile_cont(price, 0.10)"),
    ("percentile(price, 95)", "quantile_cont(price, 0.95)"),
    ("percentile(attendance, 99.5)", "quantile_cont(attendance, 0.995)"),
    ("percentile(attendance, 100)", "quantile_cont(attendance, 1.0)"),
]


@pytest.mark.parametrize("ours, sql", AGGREGATES)
@pytest.mark.parametrize("where, sql_where", [(None, "true"), ("price > 50", "price > 50"),
                                              ("attendance < 0", "attendance < 0")])
def test_aggregates_without_group_by(data, ours, sql, where, sql_where):
    source, connection, _ = data
    result = odsql.run(source, FIELDS, select=f"{ours} as v", where=where)
    same(result, duck(connection, f"SELECT {sql} AS v FROM t WHERE {sql_where}"))


@pytest.mark.parametrize("ours, sql", AGGREGATES)
def test_aggregates_by_group(data, ours, sql):
    source, connection, _ = data
    result = odsql.run(source, FIELDS, select=f"city, {ours} as v", group_by="city", where="free_entry = false")
    same(result, duck(connection, f"SELECT city, {sql} AS v FROM t WHERE free_entry = false GROUP BY city"))


def test_aggregates_mixed_in_one_query_with_a_page_of_groups(data):
    source, connection, _ = data
    result = odsql.run(source, FIELDS, select="category, median(price) as m, count(*) as n, percentile(attendance, 25) as q",
                       group_by="category", order_by="m desc", limit=3, offset=1)
    same(result, duck(connection, "SELECT category, median(price) AS m, count(*) AS n, quantile_cont(attendance, 0.25) AS q "
                                  "FROM t GROUP BY category ORDER BY m DESC LIMIT 3 OFFSET 1"), sort=False)


def test_envelope_is_shapely_s_envelope_of_the_group_s_points(data):
    source, _, table = data
    result = odsql.run(source, FIELDS, select="city, envelope(geo_point_2d) as e, count(*) as n", group_by="city")
    assert result.schema.field("e").type == pa.binary()
    rows = table.to_pylist()
    for row in result.to_pylist():
        points = [(r["geo_point_2d"]["lon"], r["geo_point_2d"]["lat"]) for r in rows
                  if r["city"] == row["city"] and r["geo_point_2d"] is not None]
        expected = shapely.envelope(shapely.MultiPoint(points))
        assert shapely.equals(shapely.from_wkb(row["e"]), expected), row["city"]
    nowhere = odsql.run(source, FIELDS, select="envelope(geo_point_2d) as e", where="attendance < 0")
    assert nowhere.to_pylist() == [{"e": None}]
    one = odsql.run(source, FIELDS, select="envelope(geo_point_2d) as e", where="event_id = 5")
    assert shapely.from_wkb(one["e"][0].as_py()).geom_type == "Point"


RANGES = [
    ("range(attendance, 5000)", "CAST(floor(attendance / 5000) * 5000 AS BIGINT)", "true"),
    ("range(price, 12.5)", "floor(price / 12.5) * 12.5", "true"),
    ("range(price, 0.5)", "floor(price / 0.5) * 0.5", "true"),
    ("range(attendance, EQUI(1000, 2000, 9000))", "CAST(2000 + floor((attendance - 2000) / 1000) * 1000 AS BIGINT)",
     "attendance IS NULL OR (attendance >= 2000 AND attendance < 9000)"),
    ("range(price, equi(7.5, -10, 40))", "-10 + floor((price + 10) / 7.5) * 7.5",
     "price IS NULL OR (price >= -10 AND price < 40)"),
    ("range(attendance, *, 1000, 10000, 30000, *)",
     "CASE WHEN attendance < 1000 THEN '[*, 1000[' WHEN attendance < 10000 THEN '[1000, 10000[' "
     "WHEN attendance < 30000 THEN '[10000, 30000[' WHEN attendance >= 30000 THEN '[30000, *[' END", "true"),
    ("range(price, 10, 20.5, 50)", "CASE WHEN price < 20.5 THEN '[10, 20.5[' WHEN price < 50 THEN '[20.5, 50[' END",
     "price IS NULL OR (price >= 10 AND price < 50)"),
    ("range(price, *, 25)", "CASE WHEN price < 25 THEN '[*, 25[' END", "price IS NULL OR price < 25"),
    ("range(price, 25, *)", "CASE WHEN price >= 25 THEN '[25, *[' END", "price IS NULL OR price >= 25"),
]


@pytest.mark.parametrize("ours, sql, sql_where", RANGES)
def test_group_by_ranges(data, ours, sql, sql_where):
    source, connection, _ = data
    result = odsql.run(source, FIELDS, select="count(*) as n, sum(attendance) as s", group_by=f"{ours} as k")
    same(result, duck(connection, f"SELECT {sql} AS k, count(*) AS n, sum(attendance) AS s FROM t "
                                  f"WHERE {sql_where} GROUP BY k"))


@pytest.mark.parametrize("select", ["count(*) as n", "median(price) as m"])  # merged by batch, or whole
def test_static_ranges_come_in_their_order_in_a_page(data, select):
    source, _, _ = data
    result = odsql.run(source, FIELDS, select=select, group_by="range(attendance, *, 2000, 10000, 30000, *) as k",
                       limit=3)
    assert result["k"].to_pylist() == ["[*, 2000[", "[2000, 10000[", "[10000, 30000["]


DATE_PARTS = [
    ("year", "year"), ("quarter", "quarter"), ("month", "month"), ("day", "day"), ("dayofweek", "isodow"),
    ("hour", "hour"), ("minute", "minute"), ("second", "second"), ("millisecond", "millisecond"),
]


@pytest.mark.parametrize("part, function", DATE_PARTS)
@pytest.mark.parametrize("timezone", ["UTC", "Europe/Paris", "America/St_Johns"])
def test_group_by_date_parts(data, part, function, timezone):
    source, connection, _ = data
    result = odsql.run(source, FIELDS, select="count(*) as n", group_by=f"{part}(starts_at) as k", timezone=timezone)
    expression = f"{function}(starts_at AT TIME ZONE '{timezone}')"
    if part == "millisecond":  # DuckDB's counts the seconds' milliseconds too
        expression = f"{expression} % 1000"
    same(result, duck(connection, f"SELECT {expression} AS k, count(*) AS n FROM t GROUP BY k"))


@pytest.mark.parametrize("part, function", [p for p in DATE_PARTS if p[0] in ("year", "quarter", "month", "day", "dayofweek")])
def test_group_by_date_parts_of_a_date_field(data, part, function):
    source, connection, _ = data
    result = odsql.run(source, FIELDS, select="count(*) as n", group_by=f"{part}(event_date) as k", timezone="Asia/Tokyo")
    same(result, duck(connection, f"SELECT {function}(event_date) AS k, count(*) AS n FROM t GROUP BY k"))


@pytest.mark.parametrize("pattern, strftime", [("yyyy-MM", "%Y-%m"), ("yyyy-MM-dd HH", "%Y-%m-%d %H"), ("MM/yy", "%m/%y")])
def test_group_by_date_format(data, pattern, strftime):
    source, connection, _ = data
    result = odsql.run(source, FIELDS, select="count(*) as n", group_by=f"date_format(starts_at, '{pattern}') as k",
                       timezone="Europe/Paris")
    same(result, duck(connection, f"SELECT strftime(starts_at AT TIME ZONE 'Europe/Paris', '{strftime}') AS k, "
                                  "count(*) AS n FROM t GROUP BY k"))


NOW = datetime(2025, 3, 31, 10, 30, 15, 250_000, tzinfo=timezone.utc)
NOW_SQL = "TIMESTAMPTZ '2025-03-31 10:30:15.25+00'"
NOW_CASES = [
    ("starts_at > now()", f"starts_at > {NOW_SQL}"),
    ("starts_at >= now(days=-7)", f"starts_at >= {NOW_SQL} - INTERVAL 7 DAY"),
    ("starts_at < now(months=-1)", f"starts_at < {NOW_SQL} - INTERVAL 1 MONTH"),
    ("starts_at < now(years=-1, months=-1, weeks=1, hours=2)",
     f"starts_at < {NOW_SQL} - INTERVAL 1 YEAR - INTERVAL 1 MONTH + INTERVAL 7 DAY + INTERVAL 2 HOUR"),
    ("starts_at >= now(minutes=-90, seconds=30, microseconds=5)",
     f"starts_at >= {NOW_SQL} - INTERVAL 90 MINUTE + INTERVAL 30 SECOND + INTERVAL 5 MICROSECOND"),
    ("now(month=1, day=1, hour=0, minute=0, second=0, microsecond=0) <= starts_at",
     "starts_at >= (date_trunc('year', TIMESTAMP '2025-03-31 12:30:15.25') AT TIME ZONE 'Europe/Paris')"),
    ("starts_at >= now(day=1, hour=0, minute=0, second=0, microsecond=0, months=-6)",
     "starts_at >= ((date_trunc('month', TIMESTAMP '2025-03-31 12:30:15.25') - INTERVAL 6 MONTH) AT TIME ZONE 'Europe/Paris')"),
    ("event_date >= now(years=-1)", f"(CAST(event_date AS TIMESTAMP) AT TIME ZONE 'UTC') >= {NOW_SQL} - INTERVAL 1 YEAR"),
    ("not starts_at > now(days=-400)", f"NOT starts_at > {NOW_SQL} - INTERVAL 400 DAY"),
    ("starts_at IN [now(years=-1)..now()[", f"starts_at >= {NOW_SQL} - INTERVAL 1 YEAR AND starts_at < {NOW_SQL}"),
    ("event_date IN ]now(months=-18)..now(months=-6)]",
     f"CAST(event_date AS TIMESTAMP) AT TIME ZONE 'UTC' > {NOW_SQL} - INTERVAL 18 MONTH "
     f"AND CAST(event_date AS TIMESTAMP) AT TIME ZONE 'UTC' <= {NOW_SQL} - INTERVAL 6 MONTH"),
]


@pytest.mark.parametrize("where, sql", NOW_CASES)
def test_now_with_shifts(data, monkeypatch, where, sql):
    source, connection, _ = data
    monkeypatch.setattr(values, "clock", lambda: NOW)
    connection.execute("SET TimeZone = 'Europe/Paris'")  # calendar arithmetic in the query's timezone, as ours
    ours = odsql.run(source, FIELDS, select="event_id", where=where, timezone="Europe/Paris")
    theirs = duck(connection, f"SELECT event_id FROM t WHERE {sql}")
    same(ours, theirs)


def test_now_shifts_keep_the_day_within_the_month():
    march_31 = datetime(2024, 3, 31, 12, tzinfo=timezone.utc)
    assert values.shifted(march_31, (("months", -1),), timezone.utc) == datetime(2024, 2, 29, 12, tzinfo=timezone.utc)
    assert values.shifted(march_31, (("month", 4),), timezone.utc) == datetime(2024, 4, 30, 12, tzinfo=timezone.utc)
    assert values.shifted(march_31, (("years", 1), ("days", 1)), timezone.utc) == datetime(2025, 4, 1, 12, tzinfo=timezone.utc)


DATE_WHERE = [
    ("year(starts_at) = 2024", "year(starts_at AT TIME ZONE 'Europe/Paris') = 2024"),
    ("month(starts_at) >= 10", "month(starts_at AT TIME ZONE 'Europe/Paris') >= 10"),
    ("2 = quarter(event_date)", "quarter(event_date) = 2"),
    ("dayofweek(starts_at) = 7 OR hour(starts_at) < 6", "isodow(starts_at AT TIME ZONE 'Europe/Paris') = 7 "
     "OR hour(starts_at AT TIME ZONE 'Europe/Paris') < 6"),
    ("NOT day(event_date) != 1", "NOT day(event_date) != 1"),
    ("date_format(starts_at, 'yyyy-MM') = '2025-06'", "strftime(starts_at AT TIME ZONE 'Europe/Paris', '%Y-%m') = '2025-06'"),
    ("minute(starts_at) > 29.5", "minute(starts_at AT TIME ZONE 'Europe/Paris') > 29.5"),
    ("year(starts_at) IN (2024, 2026)", "year(starts_at AT TIME ZONE 'Europe/Paris') IN (2024, 2026)"),
    ("NOT month(event_date) IN (1, 2, 12)", "NOT month(event_date) IN (1, 2, 12)"),
    ("hour(starts_at) IN [8..12[", "hour(starts_at AT TIME ZONE 'Europe/Paris') >= 8 "
     "AND hour(starts_at AT TIME ZONE 'Europe/Paris') < 12"),
    ("NOT dayofweek(event_date) IN ]1..5]", "NOT (isodow(event_date) > 1 AND isodow(event_date) <= 5)"),
]


@pytest.mark.parametrize("where, sql", DATE_WHERE)
def test_date_parts_in_where(data, where, sql):
    source, connection, _ = data
    ours = odsql.run(source, FIELDS, select="event_id", where=where, timezone="Europe/Paris")
    same(ours, duck(connection, f"SELECT event_id FROM t WHERE {sql}"))


PARIS = shapely.box(2.25, 48.80, 2.42, 48.91)
LYON = shapely.Polygon([(4.78, 45.70), (4.92, 45.71), (4.90, 45.80), (4.80, 45.79)])
CROSSING = shapely.LineString([(2.0, 48.85), (2.6, 48.87)])


def literal(geometry: shapely.Geometry, geojson: bool) -> str:
    return shapely.to_geojson(geometry) if geojson else shapely.to_wkt(geometry)


def shapely_ids(table: pa.Table, field: str, test) -> list[int]:
    rows = table.to_pylist()
    out = []
    for row in rows:
        value = row[field]
        if value is None:
            continue
        geometry = shapely.Point(value["lon"], value["lat"]) if field == "geo_point_2d" else shapely.from_wkb(value)
        if test(geometry):
            out.append(row["event_id"])
    return sorted(out)


def run_ids(source, where: str) -> list[int]:
    return sorted(odsql.run(source, FIELDS, select="event_id", where=where)["event_id"].to_pylist())


GEOMETRY_CASES = [
    ("intersects({f}, geom'{g}')", lambda q: lambda g: q.intersects(g)),
    ("within({f}, geom'{g}')", lambda q: lambda g: g.within(q)),
    ("disjoint({f}, geom'{g}')", lambda q: lambda g: q.disjoint(g)),
    ("geometry({f}, geom'{g}', INTERSECTS)", lambda q: lambda g: q.intersects(g)),
    ("geometry({f}, GEOM'{g}', within)", lambda q: lambda g: g.within(q)),
    ("geometry({f}, geom'{g}', DISJOINT)", lambda q: lambda g: q.disjoint(g)),
    ("NOT intersects({f}, geom'{g}')", lambda q: lambda g: not q.intersects(g)),
]


@pytest.mark.parametrize("text, test", GEOMETRY_CASES)
@pytest.mark.parametrize("field", ["geo_point_2d", "shape"])
@pytest.mark.parametrize("query", [PARIS, LYON, CROSSING], ids=["box", "polygon", "line"])
@pytest.mark.parametrize("geojson", [False, True], ids=["wkt", "geojson"])
def test_geometry_filters_match_shapely(data, text, test, field, query, geojson):
    source, _, table = data
    where = text.format(f=field, g=literal(query, geojson))
    expected = shapely_ids(table, field, test(query))
    assert run_ids(source, where) == expected


def test_geometry_filters_are_not_trivial(data):
    source, _, table = data
    for field in ("geo_point_2d", "shape"):
        inside = run_ids(source, f"intersects({field}, geom'{PARIS.wkt}')")
        assert 0 < len(inside) < table.num_rows - table[field].null_count


def test_v2_0_polygon_and_distance(data):
    source, _, table = data
    assert run_ids(source, f"polygon(geo_point_2d, geom'{LYON.wkt}')") == shapely_ids(table, "geo_point_2d", LYON.contains)
    assert run_ids(source, "distance(geo_point_2d, geom'POINT(2.35 48.85)', 2km)") == \
        run_ids(source, "within_distance(geo_point_2d, geom'POINT(2.35 48.85)', 2km)")


def test_geometry_filter_with_other_conditions(data):
    source, _, table = data
    ours = run_ids(source, f"city = 'Paris' AND intersects(shape, geom'{json.dumps(shapely.geometry.mapping(PARIS))}') "
                           "OR price > 95")
    rows = {r["event_id"]: r for r in table.to_pylist()}
    inside = set(shapely_ids(table, "shape", PARIS.intersects))
    assert ours == sorted(i for i, r in rows.items() if (r["city"] == "Paris" and i in inside)
                          or (r["price"] is not None and r["price"] > 95))


def zigzag(vertices: int) -> str:
    """A line of `vertices` vertices in few characters, so that the clause stays short."""
    return "LINESTRING(" + ",".join("0 0" if i % 2 else "1 1" for i in range(vertices)) + ")"


def test_geometry_vertices_count_in_the_budget():
    with pytest.raises(ODSQLError, match="vertices") as caught:
        odsql.compile_where(f"intersects(shape, geom'{zigzag(cost.MAX_VERTICES + 1)}')", FIELDS)
    assert caught.value.position == 18
    half = zigzag(cost.MAX_VERTICES // 2 + 1)
    assert odsql.compile_where(f"intersects(shape, geom'{half}')", FIELDS) is not None
    with pytest.raises(ODSQLError, match="vertices"):  # one budget for every where clause of a request
        odsql.where_all([f"intersects(shape, geom'{half}')", f"disjoint(geo_point_2d, geom'{half}')"], FIELDS)


ERRORS = [
    ("select", "median(city)", 7, "median() cannot take the text field 'city'"),
    ("select", "percentile(price)", 16, "expected ','"),
    ("select", "percentile(price, 101)", 18, "expects a number from 0 to 100"),
    ("select", "percentile(price, 'x')", 18, "expects a number from 0 to 100"),
    ("select", "envelope(price)", 9, "envelope() cannot take the double field 'price'"),
    ("select", "count(distinct)", 6, "unknown field 'distinct'"),
    ("select", "median(nothere)", 7, "unknown field 'nothere'"),
    ("group_by", "range(city, 10)", 6, "range() cannot take the text field 'city'"),
    ("group_by", "range(price, 0)", 0, "step above 0"),
    ("group_by", "range(price, 10, 5)", 0, "bounds must increase"),
    ("group_by", "range(price, *, *)", 0, "increasing bounds"),
    ("group_by", "range(price, 10, *, 20)", 0, "increasing bounds"),
    ("group_by", "range(price, equi(0, 1, 2))", 0, "0 < step"),
    ("group_by", "range(price, equi(1, 0, 1000))", 0, "at most 100 steps"),
    ("group_by", "range(price)", 11, "expected ','"),
    ("group_by", "millisecond(event_date)", 12, "millisecond() cannot take the date field"),
    ("group_by", "quarter(price)", 8, "quarter() cannot take the double field"),
    ("where", "intersects(shape)", 0, "takes 2 arguments"),
    ("where", "intersects(city, geom'POINT(1 2)')", 11, "'city' is a text field"),
    ("where", "intersects(shape, geom'POLYGON((1 2, 3')", 18, "expected a geometry as WKT or GeoJSON"),
    ("where", "within(shape, geom'{\"type\": \"Polygon\"}')", 14, "expected a geometry"),
    ("where", "intersects(shape, 12)", 18, "expects a geometry here"),
    ("where", "geometry(shape, geom'POINT(1 2)', TOUCHES)", 34, "INTERSECTS, DISJOINT or WITHIN"),
    ("where", "polygon(shape, geom'POINT(1 2)')", 8, "'shape' is a geo_shape field"),
    ("where", "starts_at > now(dayz=1)", 16, "now() takes"),
    ("where", "starts_at > now(days=1.5)", 21, "whole number of days"),
    ("where", "starts_at > now(days)", 20, "expected '='"),
    ("where", "city = now()", 7, "now() compares with a date or datetime field"),
    ("where", "starts_at > now(years=-9000)", 12, "cannot shift so far"),
    ("where", "starts_at > now(hour=25)", 12, "cannot shift so far"),
    ("where", "year(starts_at) = 'x'", 18, "year() compares with a number"),
    ("where", "year(city) = 2024", 5, "year() cannot take the text field 'city'"),
    ("where", "year(starts_at) = starts_at", 18, "compares with a literal value"),
    ("where", "nosuch(starts_at) = 1", 0, "unknown function 'nosuch'"),
    ("where", "year(starts_at) IN (2024, 'x')", 26, "year() compares with a number"),
    ("where", "city IN [now()..now(days=1)]", 9, "now() compares with a date or datetime field"),
    ("where", "year(starts_at) LIKE '2%'", 0, "expected a field name"),
]


@pytest.mark.parametrize("clause, text, position, problem", ERRORS)
def test_errors_name_the_clause_and_position(data, clause, text, position, problem):
    source, _, _ = data
    query = {"select": "count(*)", clause: text}
    with pytest.raises(ODSQLError) as caught:
        odsql.run(source, FIELDS, **query)
    assert problem in caught.value.problem, caught.value
    assert (caught.value.clause, caught.value.position) == (clause, position), caught.value


def test_function_arguments_count_in_the_term_budget():
    bounds = ", ".join(str(i) for i in range(1, 100))
    budget = cost.Budget(terms=50)
    with pytest.raises(ODSQLError, match="terms"):
        odsql.parse_group_by(f"range(price, {bounds})", FIELDS, budget)


def test_ranges_over_64_bit_integers_answer_groups_or_a_400():
    source = pads.dataset(pa.table({"a": pa.array([2**63 - 1, -2**63, 5, None], pa.int64())}))
    fields = [Field("a", "int")]
    static = odsql.run(source, fields, select="count(*) as n", group_by="range(a, *, 0, *) as k", limit=5)
    assert static.to_pylist() == [{"k": "[*, 0[", "n": 1}, {"k": "[0, *[", "n": 2}, {"k": None, "n": 1}]
    with pytest.raises(ODSQLError, match="cannot compute the groups") as caught:
        odsql.run(source, fields, select="count(*)", group_by="range(a, 1000)")
    assert caught.value.clause == "group_by"
