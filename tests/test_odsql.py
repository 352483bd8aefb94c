"""ODSQL against a small demo dataset in Parquet: every construct checked against the same
question asked of the raw rows in plain Python."""
from __future__ import annotations

import inspect
import math
import random
from collections import Counter, defaultdict
from datetime import date, datetime, timezone

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from domain import demo, odsql
from domain.fields import Field
from domain.odsql import runner
from domain.odsql.errors import ODSQLError

FIELDS = demo.FIELDS
TEXT = [f.name for f in FIELDS if f.type == "text"]
UTC = timezone.utc


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    table = demo.table(rows=2000)
    path = tmp_path_factory.mktemp("odsql") / "events.parquet"
    pq.write_table(table, path, row_group_size=256)
    return pads.dataset(path), table.to_pylist()


def ids(data, where=None, **kw) -> list[int]:
    source, _ = data
    return sorted(odsql.run(source, FIELDS, select="event_id", where=where, **kw)["event_id"].to_pylist())


def expected(data, keep) -> list[int]:
    return sorted(r["event_id"] for r in data[1] if keep(r))


def haversine(lon1, lat1, lon2, lat2) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(min(1.0, math.sqrt(h)))


def near(r, lon, lat, metres) -> bool:
    point = r["geo_point_2d"]
    return point is not None and haversine(lon, lat, point["lon"], point["lat"]) <= metres


def words_match(r, text, names=TEXT) -> bool:
    return all(any(w.lower() in (r[n] or "").lower() for n in names) for w in text.split())


JUNE_21 = datetime(2024, 6, 21, 10, tzinfo=UTC)

CONDITIONS = [
    ('city = "Paris"', lambda r: r["city"] == "Paris"),
    ("city != 'Paris'", lambda r: r["city"] != "Paris"),
    ("`city` = 'Lyon'", lambda r: r["city"] == "Lyon"),
    ("attendance > 25000", lambda r: r["attendance"] > 25000),
    ("100 < attendance", lambda r: r["attendance"] > 100),
    ("attendance <= 2000.5", lambda r: r["attendance"] <= 2000),
    ("price >= 50.5", lambda r: r["price"] >= 50.5),
    ("price < 10", lambda r: r["price"] < 10),
    ("price = 0", lambda r: r["price"] == 0),
    ("free_entry", lambda r: r["free_entry"]),
    ("free_entry = false", lambda r: not r["free_entry"]),
    ("NOT free_entry", lambda r: not r["free_entry"]),
    ("event_date = date'2024-06-21'", lambda r: r["event_date"] == date(2024, 6, 21)),
    ("event_date >= date'2025-06-01'", lambda r: r["event_date"] >= date(2025, 6, 1)),
    ("event_date > date'2024-06-21T10:00:00Z'", lambda r: r["event_date"] > date(2024, 6, 21)),
    ("event_date >= date'2024-06-21T00:00:00Z'", lambda r: r["event_date"] >= date(2024, 6, 21)),
    ("starts_at < date'2024-03-01'", lambda r: r["starts_at"] < datetime(2024, 3, 1, tzinfo=UTC)),
    ("starts_at >= date'2024-06-21T10:00:00Z'", lambda r: r["starts_at"] >= JUNE_21),
    ("starts_at >= date'2024-06-21T12:00:00+02:00'", lambda r: r["starts_at"] >= JUNE_21),
    ("ends_at > starts_at", lambda r: r["ends_at"] > r["starts_at"]),
    # precedence: NOT binds tighter than AND, AND tighter than OR; keywords in any case
    ("city = 'Paris' OR city = 'Lyon' AND attendance > 25000",
     lambda r: r["city"] == "Paris" or (r["city"] == "Lyon" and r["attendance"] > 25000)),
    ("(city = 'Paris' or city = 'Lyon') And attendance > 25000",
     lambda r: r["city"] in ("Paris", "Lyon") and r["attendance"] > 25000),
    ("not city = 'Paris' AND free_entry", lambda r: r["city"] != "Paris" and r["free_entry"]),
    ("NOT (city = 'Paris' OR free_entry)", lambda r: not (r["city"] == "Paris" or r["free_entry"])),
    # IN lists
    ('city IN ("Paris", "Lyon")', lambda r: r["city"] in ("Paris", "Lyon")),
    ("city NOT IN ('Paris', 'Lille')", lambda r: r["city"] not in ("Paris", "Lille")),
    ("event_id IN (1, 2, 3, 5000) OR attendance IN (10, 20)", lambda r: r["event_id"] in (1, 2, 3) or r["attendance"] in (10, 20)),
    # LIKE
    ("city LIKE 'par*'", lambda r: r["city"].lower().startswith("par")),
    ("city LIKE '%e'", lambda r: r["city"].lower().endswith("e")),
    ("title like 'concert*live*'", lambda r: r["title"].lower().startswith("concert") and "live" in r["title"].lower()),
    ("title LIKE 'nuit'", lambda r: "nuit" in r["title"].lower()),
    ("city NOT LIKE 'L*'", lambda r: not r["city"].lower().startswith("l")),
    # nulls
    ("description IS NULL", lambda r: r["description"] is None),
    ("description is not null", lambda r: r["description"] is not None),
    ("description = null", lambda r: r["description"] is None),
    ("geo_point_2d IS NULL", lambda r: r["geo_point_2d"] is None),
    ("description LIKE '*lyon*'", lambda r: r["description"] is not None and "lyon" in r["description"].lower()),
    ("NOT description LIKE '*lyon*'", lambda r: r["description"] is not None and "lyon" not in r["description"].lower()),
    # full text, search, startswith
    ('"lyon festival"', lambda r: words_match(r, "lyon festival")),
    ("'PARIS'", lambda r: words_match(r, "paris")),
    ('NOT "lyon"', lambda r: not words_match(r, "lyon")),
    ('search(title, "concert live")', lambda r: words_match(r, "concert live", ["title"])),
    ('search(*, "nantes")', lambda r: words_match(r, "nantes")),
    ("startswith(city, 'saint')", lambda r: r["city"].lower().startswith("saint")),
    # geography
    ("within_distance(geo_point_2d, geom'POINT(2.3522 48.8566)', 3km)", lambda r: near(r, 2.3522, 48.8566, 3000)),
    ("within_distance(geo_point_2d, geom'POINT(4.8357 45.764)', 2500 m)", lambda r: near(r, 4.8357, 45.764, 2500)),
    ("within_distance(geo_point_2d, GEOM'POINT(4.8357 45.764)', 1.5mi)", lambda r: near(r, 4.8357, 45.764, 1.5 * 1609.344)),
    ("in_bbox(geo_point_2d, 48.84, 2.33, 48.87, 2.37)", lambda r: r["geo_point_2d"] is not None
     and 48.84 <= r["geo_point_2d"]["lat"] <= 48.87 and 2.33 <= r["geo_point_2d"]["lon"] <= 2.37),
    ("in_bbox(geo_point_2d, 48.87, 2.37, 48.84, 2.33)", lambda r: r["geo_point_2d"] is not None
     and 48.84 <= r["geo_point_2d"]["lat"] <= 48.87 and 2.33 <= r["geo_point_2d"]["lon"] <= 2.37),
]


@pytest.mark.parametrize("where, keep", CONDITIONS, ids=[c[0] for c in CONDITIONS])
def test_where(data, where, keep):
    want = expected(data, keep)
    assert want, "every case should select some records"
    assert ids(data, where) == want
    assert odsql.count(data[0], FIELDS, where) == len(want)


def test_cases_are_not_trivial(data):
    assert 0 < len(expected(data, lambda r: near(r, 2.3522, 48.8566, 3000))) < len(data[1]) // 8


@pytest.mark.parametrize("opener, closer", [("[", "]"), ("]", "["), ("[", "["), ("]", "]")])
def test_ranges_with_inclusive_and_exclusive_bounds(data, opener, closer):
    values = sorted({r["attendance"] for r in data[1]})
    low, high = values[100], values[400]
    where = f"attendance IN {opener}{low}..{high}{closer}"
    above = (lambda v: v >= low) if opener == "[" else (lambda v: v > low)
    below = (lambda v: v <= high) if closer == "]" else (lambda v: v < high)
    assert ids(data, where) == expected(data, lambda r: above(r["attendance"]) and below(r["attendance"]))


def test_date_ranges_on_date_and_datetime_fields(data):
    assert ids(data, "event_date IN [date'2024-06-01'..date'2024-06-30']") == expected(
        data, lambda r: date(2024, 6, 1) <= r["event_date"] <= date(2024, 6, 30))
    assert ids(data, "starts_at IN [date'2024-06'..date'2024-07'[") == expected(
        data, lambda r: datetime(2024, 6, 1, tzinfo=UTC) <= r["starts_at"] < datetime(2024, 7, 1, tzinfo=UTC))


def test_date_literal_without_offset_is_read_in_the_timezone(data):
    paris_midnight = datetime(2024, 6, 20, 22, tzinfo=UTC)  # 2024-06-21T00:00 in Paris, summer time
    assert ids(data, "starts_at >= date'2024-06-21'", timezone="Europe/Paris") == expected(
        data, lambda r: r["starts_at"] >= paris_midnight)


def test_several_where_clauses_are_anded(data):
    source, _ = data
    clauses = ["city = 'Paris'", "attendance > 20000"]
    want = expected(data, lambda r: r["city"] == "Paris" and r["attendance"] > 20000)
    assert ids(data, clauses) == want
    assert odsql.count(source, FIELDS, clauses) == len(want)
    assert odsql.count(source, FIELDS) == odsql.count(source, FIELDS, ["", "  "]) == 2000
    assert odsql.compile_where("  ", FIELDS) is None and odsql.where_all([], FIELDS) is None


def test_refine_and_exclude(data):
    source, _ = data
    cases = [
        (["city:Paris"], [], lambda r: r["city"] == "Paris"),
        (["event_date:2024"], [], lambda r: r["event_date"].year == 2024),
        (["event_date:2025-02"], [], lambda r: (r["event_date"].year, r["event_date"].month) == (2025, 2)),
        (["starts_at:2024/06/21"], [], lambda r: r["starts_at"].date() == date(2024, 6, 21)),
        (["free_entry:true", "attendance:" + str(data[1][0]["attendance"])], [],
         lambda r: r["free_entry"] and r["attendance"] == data[1][0]["attendance"]),
        ([], ["city:Paris", "event_date:2024"], lambda r: r["city"] != "Paris" and r["event_date"].year != 2024),
        ([], ["description:" + data[1][0]["description"]], lambda r: r["description"] != data[1][0]["description"]),
    ]
    for refine, exclude, keep in cases:
        condition = odsql.refine_exclude(refine, exclude, FIELDS)
        got = sorted(odsql.run(source, FIELDS, select="event_id", filter=condition)["event_id"].to_pylist())
        assert got == expected(data, keep), (refine, exclude)
        assert odsql.count(source, FIELDS, "attendance > 5000", filter=condition) == len(
            expected(data, lambda r: keep(r) and r["attendance"] > 5000))
    assert odsql.refine_exclude([], None, FIELDS) is None
    with pytest.raises(ODSQLError, match="unknown field 'town'"):
        odsql.refine_exclude(["town:Paris"], [], FIELDS)
    with pytest.raises(ODSQLError, match="FACET:VALUE"):
        odsql.refine_exclude([], ["Paris"], FIELDS)


def test_select_with_aliases_and_star(data):
    source, rows = data
    chosen = odsql.parse_select("title as t, city, *", FIELDS)
    assert not chosen.aggregated
    assert [i.alias for i in chosen.items] == ["t", "city"] + [f.name for f in FIELDS if f.name != "city"]
    assert [i.alias for i in odsql.parse_select(None, FIELDS).items] == [f.name for f in FIELDS]
    assert odsql.parse_select("*", FIELDS) == odsql.parse_select("", FIELDS)
    table = odsql.run(source, FIELDS, select="event_id as id, `title` AS t, city", where="city = 'Lyon'")
    assert table.column_names == ["id", "t", "city"]
    assert table.to_pylist() == [{"id": r["event_id"], "t": r["title"], "city": r["city"]}
                                 for r in rows if r["city"] == "Lyon"]
    assert odsql.run(source, FIELDS, limit=3).to_pylist() == rows[:3]


def test_aggregates_without_group_by_give_one_row(data):
    source, rows = data
    table = odsql.run(source, FIELDS, where="city = 'Lyon'", select=(
        "count(*) as n, count(description) as described, sum(attendance) as total, avg(price) as mean, "
        "min(event_date) as first, max(starts_at), min(city) as city"))
    lyon = [r for r in rows if r["city"] == "Lyon"]
    assert table.num_rows == 1
    got = table.to_pylist()[0]
    assert got.pop("mean") == pytest.approx(sum(r["price"] for r in lyon) / len(lyon))
    assert got == {
        "n": len(lyon), "described": sum(r["description"] is not None for r in lyon),
        "total": sum(r["attendance"] for r in lyon), "first": min(r["event_date"] for r in lyon),
        "max(starts_at)": max(r["starts_at"] for r in lyon), "city": "Lyon",
    }
    empty = odsql.run(source, FIELDS, select="count(*) as n", where="city = 'Nowhere'")
    assert empty.to_pylist() == [{"n": 0}]


def test_group_by_fields_and_date_parts(data):
    source, rows = data
    table = odsql.run(source, FIELDS, select="count(*) as n, sum(attendance) as total", group_by="city",
                      where="attendance > 1000")
    assert table.column_names == ["city", "n", "total"]
    want: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        if r["attendance"] > 1000:
            want[r["city"]][0] += 1
            want[r["city"]][1] += r["attendance"]
    assert {row["city"]: [row["n"], row["total"]] for row in table.to_pylist()} == dict(want)

    by_year = odsql.run(source, FIELDS, select="year(event_date) as y, count(*) as n",
                        group_by="year(event_date) as y", order_by="y")
    assert by_year.to_pylist() == [{"y": y, "n": n} for y, n in sorted(Counter(r["event_date"].year for r in rows).items())]

    months = odsql.run(source, FIELDS, select="count(*)", group_by="year(starts_at), month(starts_at) as m",
                       order_by="count(*) desc, `year(starts_at)`, m", limit=3)
    counts = Counter((r["starts_at"].year, r["starts_at"].month) for r in rows)
    top3 = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    assert months.to_pylist() == [{"year(starts_at)": y, "m": m, "count(*)": n} for (y, m), n in top3]

    formatted = odsql.run(source, FIELDS, group_by="date_format(event_date, 'yyyy-MM') as month", order_by="month")
    assert formatted["month"].to_pylist() == sorted({r["event_date"].strftime("%Y-%m") for r in rows})


def test_order_by_with_limit_and_offset(data):
    source, rows = data
    table = odsql.run(source, FIELDS, select="event_id, attendance as a", order_by="a desc, event_id",
                      limit=10, offset=5)
    want = sorted(rows, key=lambda r: (-r["attendance"], r["event_id"]))[5:15]
    assert table.to_pylist() == [{"event_id": r["event_id"], "a": r["attendance"]} for r in want]
    # ordering by a field that is not selected; nulls come last
    table = odsql.run(source, FIELDS, select="event_id", order_by="description ASC, event_id DESC", limit=2000)
    want = sorted(rows, key=lambda r: -r["event_id"])
    want = sorted(want, key=lambda r: (r["description"] is None, r["description"] or ""))
    assert table["event_id"].to_pylist() == [r["event_id"] for r in want]
    assert odsql.run(source, FIELDS, select="event_id", order_by="event_id desc", offset=1995)[
        "event_id"].to_pylist() == [5, 4, 3, 2, 1]


def test_running_top_matches_a_full_sort(data, monkeypatch):
    source, rows = data
    monkeypatch.setattr(runner, "BATCH_ROWS", 10)  # compact the running top often
    table = odsql.run(source, FIELDS, select="event_id", order_by="price, event_id desc", limit=50, offset=7)
    want = sorted(sorted(rows, key=lambda r: -r["event_id"]), key=lambda r: r["price"])[7:57]
    assert table["event_id"].to_pylist() == [r["event_id"] for r in want]


def test_parse_order_by_and_group_by():
    assert odsql.parse_order_by("x desc, y, z ASC", ["x", "y", "z"]) == (
        ("x", "descending"), ("y", "ascending"), ("z", "ascending"))
    assert odsql.parse_order_by(None, ["x"]) == ()
    keys = odsql.parse_group_by("city, YEAR(event_date) as y", FIELDS)
    assert [k.alias for k in keys] == ["city", "y"]


class SpySource:
    """A dataset that counts the batches the scan has handed out."""

    def __init__(self, source):
        self.source, self.pulled = source, 0
        self.schema = source.schema

    def scanner(self, **options):
        scanner, spy = self.source.scanner(**options), self

        class Counting:
            projected_schema = scanner.projected_schema

            def to_batches(self):
                for batch in scanner.to_batches():
                    spy.pulled += 1
                    yield batch
        return Counting()


def test_scan_batches_streams_lazily(data):
    source, rows = data
    spy = SpySource(source)
    schema, fields, batches = odsql.scan_batches(spy, FIELDS, select="event_id, title as name, geo_point_2d",
                                                 where="attendance > 5000", batch_rows=100)
    assert schema.names == ["event_id", "name", "geo_point_2d"]
    assert schema.field("name").type == pa.string() and schema.metadata
    assert fields[1] == Field("name", "text", "Title")
    assert spy.pulled == 0 and iter(batches) is batches
    first = next(batches)
    assert spy.pulled <= 2 and 0 < first.num_rows <= 100
    rest = list(batches)
    assert len(rest) >= 5 and all(b.num_rows <= 100 and b.schema == schema for b in rest)
    got = [r["event_id"] for b in [first, *rest] for r in b.to_pylist()]
    assert got == [r["event_id"] for r in rows if r["attendance"] > 5000]


def test_scan_batches_with_order_by_and_limit(data):
    source, rows = data
    _, _, batches = odsql.scan_batches(source, FIELDS, select="*", order_by="attendance desc", limit=250, batch_rows=100)
    batches = list(batches)
    assert [b.num_rows for b in batches] == [100, 100, 50]
    assert [r["attendance"] for b in batches for r in b.to_pylist()] == sorted(
        (r["attendance"] for r in rows), reverse=True)[:250]
    _, _, limited = odsql.scan_batches(source, FIELDS, select="event_id", limit=130, batch_rows=100)
    assert sum(b.num_rows for b in limited) == 130
    assert inspect.isgenerator(odsql.scan_batches(source, FIELDS)[2])


@pytest.mark.parametrize("select", ["count(*)", "year(event_date)", "city, sum(attendance)"])
def test_scan_batches_refuses_computed_columns(data, select):
    with pytest.raises(ODSQLError) as caught:
        odsql.scan_batches(data[0], FIELDS, select=select)
    assert caught.value.clause == "select"


ERRORS = [
    ("where", "city = 'Paris' AND )", 19, "unexpected token ')'"),
    ("where", "city = ", 7, "end of input"),
    ("where", "town = 'Paris'", 0, "unknown field 'town'"),
    ("where", "city = 'Paris' OR towns > 3", 18, "unknown field 'towns'"),
    ("where", "attendance > 'many'", 13, "cannot compare int field 'attendance'"),
    ("where", "city IN [1..2", 13, "expected ']' or '['"),
    ("where", "city IN (1, )", 12, "expected a value"),
    ("where", "`city = 1", 0, "unterminated back-quoted name"),
    ("where", "city = 'Paris", 7, "unterminated string"),
    ("where", "city = 'Paris' extra", 15, "unexpected token 'extra'"),
    ("where", "city ~ 1", 5, "unexpected character '~'"),
    ("where", "frobnicate(city)", 0, "unknown function 'frobnicate'"),
    ("where", "city", 0, "'city' is a text field"),
    ("where", "city LIKE 3", 10, "LIKE expects a string"),
    ("where", "within_distance(geo_point_2d, geom'POINT(x y)', 1km)", 30, "expects a point"),
    ("where", "in_bbox(geo_point_2d, 1, 2, 3)", 0, "takes 5 arguments"),
    ("where", "event_date > date'yesterday'", 13, "cannot compare date field"),
    ("where", "city > attendance", 0, "cannot compare text field 'city' with int field"),
    ("where", "(" * 100 + "free_entry" + ")" * 100, 64, "nested too deeply"),
    ("select", "title as", 8, "expected an alias"),
    ("select", "title, nope", 7, "unknown field 'nope'"),
    ("select", "sum(city)", 4, "sum() cannot take the text field 'city'"),
    ("select", "title, title", 7, "duplicate output name 'title'"),
    ("group_by", "count(*)", 0, "cannot group by"),
    ("group_by", "hour(event_date)", 5, "hour() cannot take the date field"),
    ("order_by", "nope desc", 0, "not a column of the result"),
    ("order_by", "title sideways", 6, "unexpected token 'sideways'"),
]


@pytest.mark.parametrize("clause, text, position, problem", ERRORS, ids=[e[1][:40] for e in ERRORS])
def test_errors_say_what_and_where(data, clause, text, position, problem):
    source, _ = data
    with pytest.raises(ODSQLError) as caught:
        odsql.run(source, FIELDS, **{clause: text})
    error = caught.value
    assert problem in error.message
    assert (error.position, error.clause) == (position, clause)
    assert error.message.endswith(f"at position {position} of {clause}")
    assert (error.status, error.error_code) == (400, "ODSQLError")
    assert error.extra == {"position": position, "clause": clause}


def test_aggregate_queries_refuse_stray_columns(data):
    with pytest.raises(ODSQLError, match="must be an aggregate or one of the group_by keys"):
        odsql.run(data[0], FIELDS, select="title, count(*)", group_by="city")
    with pytest.raises(ODSQLError, match="aggregate"):
        odsql.run(data[0], FIELDS, select="title, count(*)")


PIECES = ["city", "attendance", "price", "event_date", "starts_at", "geo_point_2d", "free_entry", "description",
          "nope", "`city`", "'Paris'", '"a b"', "3", "-2.5", "1e400", "99999999999999999999", "true", "null",
          "date'2024-06'", "date'2024-13-45'", "date'x'", "geom'POINT(2 48)'", "geom'LINESTRING(0 0, 1 1)'", "km",
          "=", "!=", "<>", "<", ">=", "AND", "or", "NOT", "IN", "LIKE", "IS", "as", "desc", "(", ")", "[", "]",
          "..", ",", "*", "-", "count", "sum", "year", "search", "startswith", "within_distance", "in_bbox",
          "date_format", "`", "'", '"', "~", "é", "#", ";"]


def random_clause(rng: random.Random) -> str:
    """Garbage characters, a jumble of ODSQL pieces, or well-formed comparisons of random types."""
    roll = rng.random()
    if roll < 0.2:
        return "".join(rng.choice("ab (),'\"`[].=<>*-0123456789:") for _ in range(rng.randint(0, 20)))
    if roll < 0.6:
        return " ".join(rng.choice(PIECES) for _ in range(rng.randint(1, 9)))
    values = ["'Paris'", "3", "-2.5", "true", "null", "date'2024-06-21'", "date'2024-06-21T10:00Z'", "attendance",
              "price", "event_date", "starts_at", "city", "free_entry", "geo_point_2d", "'2024'"]
    parts = [f"{rng.choice(values)} {rng.choice(['=', '!=', '<', '>='])} {rng.choice(values)}"
             for _ in range(rng.randint(1, 3))]
    return f" {rng.choice(['AND', 'OR'])} ".join(parts)


def test_garbage_only_ever_raises_odsql_errors(data):
    source, _ = data
    names = [f.name for f in FIELDS] + ["n", "count(*)"]
    rng = random.Random(2024)
    compiled = 0
    for _ in range(3000):
        text = random_clause(rng)
        for attempt in (
            lambda: odsql.compile_where(text, FIELDS),
            lambda: odsql.parse_select(text, FIELDS),
            lambda: odsql.parse_group_by(text, FIELDS),
            lambda: odsql.parse_order_by(text, names),
            lambda: odsql.refine_exclude([text], [text], FIELDS),
        ):
            try:
                result = attempt()
            except ODSQLError:
                continue
            if isinstance(result, pa.compute.Expression):
                compiled += 1
                source.count_rows(filter=result)  # what compiles also runs
    assert compiled > 80
