"""Fuzzing, bounded so it runs with every test run:

- schemathesis drives every operation of the OpenAPI document the running app serves (loaded
  from /api/openapi.json of a real server on a real port, with the administrator's token):
  no 5xx, and every response has a documented status code, content type, headers and body;
- hypothesis feeds the ODSQL parser arbitrary Unicode (only ODSQLError may come out) and
  valid generated queries (they compile and run against a small dataset);
- hypothesis feeds every format writer tables of arbitrary Unicode, nulls, extreme numbers
  and edge dates: each writes or refuses with its documented errors, and the cheap ones are
  read back and compared.

FUZZ_SCALE=10 multiplies every example budget, for a longer hunt than CI's.
"""
from __future__ import annotations

import asyncio
import csv
import os
import gzip
import io
import threading
from datetime import date, datetime, timedelta, timezone

import orjson
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
import requests
import schemathesis
import shapely
from aiohttp import web
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from api.routes import ROUTES
from domain import demo, odsql
from domain.fields import DATETIME, GEO_POINT, Field, fields_of, with_fields
from domain.odsql import ODSQLError
from domain import queue
from domain.redis_server import RedisServer
from domain.settings import Settings
from domain.users import UserRepo
from formats import REGISTRY, FormatNotApplicable, OptionError
from formats.base import unique_names
from tests.conftest import ADMIN_TOKEN, load_dataset
from tests.formats.samples import write

UTC = timezone.utc

# ---------------------------------------------------------------------------------------------
# The API against its own OpenAPI document
# ---------------------------------------------------------------------------------------------

SCALE = int(os.environ.get("FUZZ_SCALE", "1"))  # FUZZ_SCALE=10 for a longer hunt than CI's
API_EXAMPLES = 15 * SCALE  # per operation, positive and negative data mixed
ALIAS_EXAMPLES = 4 * SCALE  # per alias path (a trailing slash, v2.1 for v2) of an operation: same handler
AUTH = {"OSDI-API-Token": ADMIN_TOKEN}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]
OPERATION_IDS = [route.name for route in ROUTES]
ALIASES = {route.name for route in ROUTES if route.name.endswith(("-slash", "-v1", "-v2", "-v3"))}
FUZZ_ROWS = 300


class LiveServer:
    """The real app on a real port, served by its own event loop in a thread, so that
    schemathesis' blocking requests can reach it from the test's thread."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fuzz-server", daemon=True)
        self.url = ""

    def run(self, coro, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> "LiveServer":
        self.thread.start()
        self.run(self._start())
        return self

    async def _start(self) -> None:
        self.runner = web.AppRunner(create_app(self.settings))
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    def stop(self) -> None:
        try:
            self.run(self.runner.cleanup())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """One running app for the module, on a Redis of its own (the session's is flushed before
    every test), with the demo dataset and a user whose exports wait for approval. The fuzzing
    accumulates state in it, as a long-running service would."""
    root = tmp_path_factory.mktemp("fuzz")
    pq.write_table(demo.table(rows=FUZZ_ROWS), root / "demo-events.parquet")
    with RedisServer(root / "redis") as redis_server:
        settings = Settings(data_dir=root / "data", secret_key="fuzz-secret", admin_token=ADMIN_TOKEN,
                            redis_url=redis_server.url, export_ttl=3600, approval_rows=FUZZ_ROWS // 2)
        server = LiveServer(settings).start()
        try:
            server.run(load_dataset(settings, root / "demo-events.parquet", demo.DATASET_ID, demo.TITLE))
            server.user_token = server.run(_make_user(settings, "fuzzer"))
            server.session = requests.Session()
            server.schema = schemathesis.openapi.from_url(f"{server.url}/api/openapi.json", timeout=10)
            yield server
            server.session.close()
        finally:
            server.stop()


@pytest.fixture
def export_ids(live) -> list[str]:
    """Fresh exports to aim export_id at: one queued, three waiting for approval."""
    ids = []
    for token in (ADMIN_TOKEN, live.user_token, live.user_token, live.user_token):
        response = live.session.post(f"{live.url}/api/v1/exports", headers={"OSDI-API-Token": token},
                                     json=_export_body(live.url, "csv"), timeout=10)
        assert response.status_code == 201, response.text
        ids.append(response.json()["identifiers"][0].partition(":")[2])
    return ids


async def _make_user(settings: Settings, name: str) -> str:
    client = queue.connect(settings.redis_url)
    try:
        repo = UserRepo(client, ADMIN_TOKEN)
        await repo.add(name)
        return await repo.new_token(name)
    finally:
        await client.aclose()


def _export_body(base: str, export_type: str) -> dict:
    return {"export_type": export_type,
            "_links": {"osdi:resource": {"href": f"{base}/api/v2/catalog/datasets/{demo.DATASET_ID}"}}}


def _aim(case, data, live: LiveServer, export_ids: list[str]) -> None:
    """Half the time, point the case at something that exists (the dataset, an export), so
    the fuzzing gets past the 404s into the handlers."""
    path = case.path_parameters
    if isinstance(path, dict):
        if "dataset_id" in path and data.draw(st.booleans(), label="real dataset"):
            path["dataset_id"] = demo.DATASET_ID
        if "export_id" in path and data.draw(st.booleans(), label="real export"):
            path["export_id"] = data.draw(st.sampled_from(export_ids), label="export id")
        if "record_id" in path and data.draw(st.booleans(), label="real record"):
            path["record_id"] = str(data.draw(st.integers(0, FUZZ_ROWS + 1), label="record id"))
    if isinstance(case.query, dict) and isinstance(case.query.get("wait"), int) and case.query["wait"] > 1:
        case.query["wait"] = 1  # GET …/exports/{id}?wait=N holds the request up to N s on a queued export
    body = case.body
    if case.operation.label == "POST /api/v1/exports" and isinstance(body, dict) \
            and data.draw(st.booleans(), label="real resource"):
        links = body.get("_links") if isinstance(body.get("_links"), dict) else {}
        body["_links"] = {**links, "osdi:resource": {"href": _export_body(live.url, "csv")["_links"]["osdi:resource"]["href"]}}


def _beyond_http_limits(response) -> bool:
    """A request line or header over aiohttp's 8 KiB limits is refused by its HTTP parser with
    a plain-text 400 before any route or middleware sees it: not the app's to document."""
    limit = 8190
    too_long = len(response.request.path_url) > limit or any(len(str(v)) > limit for v in response.request.headers.values())
    return too_long and response.status_code == 400


# Mostly the administrator; sometimes no token or a wrong one, so 401s are checked too.
CALLERS = [AUTH, AUTH, AUTH, {}, {"OSDI-API-Token": "not-a-token"}]


@pytest.mark.parametrize("operation_id", OPERATION_IDS)
def test_api_answers_every_request_as_documented(live, request, operation_id):
    operation = live.schema.find_operation_by_id(operation_id)
    export_ids = request.getfixturevalue("export_ids") if "{export_id}" in operation.path else []
    strategy = st.one_of(operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE))
    # /health answers its documented 503 while no worker runs: there, only conformance counts.
    checks = [c for c in CHECKS if c is not not_a_server_error] if operation_id == "health" else CHECKS

    @hsettings(max_examples=ALIAS_EXAMPLES if operation_id in ALIASES else API_EXAMPLES, deadline=timedelta(seconds=5), database=None,
               suppress_health_check=list(HealthCheck))
    @given(case=strategy, data=st.data())
    def fuzz(case, data):
        _aim(case, data, live, export_ids)
        headers = data.draw(st.sampled_from(CALLERS), label="caller")
        response = case.call(base_url=live.url, session=live.session, headers=headers, timeout=10)
        if _beyond_http_limits(response):
            return
        case.validate_response(response, checks=checks, headers=headers)

    fuzz()


# ---------------------------------------------------------------------------------------------
# ODSQL: arbitrary text raises ODSQLError or nothing; generated valid queries run
# ---------------------------------------------------------------------------------------------

FIELDS = demo.FIELDS
NAMES = [f.name for f in FIELDS]
TEXT_FIELDS = [f.name for f in FIELDS if f.type == "text"]
NUMBER_FIELDS = [f.name for f in FIELDS if f.type in ("int", "double")]
DATE_FIELDS = [f.name for f in FIELDS if f.type in ("date", "datetime")]
ODSQL_TIMEZONES = ["UTC", "Europe/Paris", "Pacific/Kiritimati", "America/St_Johns"]
# Pieces of ODSQL, so that random text reaches the parser and compiler, not only the lexer.
TOKENS = [*NAMES, *(f"`{n}`" for n in NAMES), "and", "OR", "not", "in", "like", "is", "null", "true", "false",
          "as", "asc", "desc", "(", ")", "[", "]", ",", "*", "-", "..", "=", "!=", "<>", "<", "<=", ">", ">=",
          "'x'", '"Paris"', "'*'", "0", "1.5", "-3", "1e308", "99999999999999999999", "date'2024-06-21'",
          "date'2024'", "date'0001-01-01'", "date'9999-12-31T23:59:59Z'", "date'x'", "geom'POINT(2 48)'", "geom'x'",
          "count", "sum", "avg", "min", "max", "year", "month", "day", "hour", "minute", "second", "date_format",
          "'yyyy-MM'", "search", "startswith", "within_distance", "in_bbox", "3km", "1 mi", "`unknown`"]
ODSQL_TEXT = st.one_of(st.text(max_size=60), st.lists(st.sampled_from(TOKENS), max_size=14).map(" ".join))


@pytest.fixture(scope="module")
def odsql_source(tmp_path_factory):
    path = tmp_path_factory.mktemp("odsql-fuzz") / "events.parquet"
    pq.write_table(demo.table(rows=200), path, row_group_size=64)
    return pads.dataset(path)


def _only_odsql_errors(call, *args, **kwargs):
    try:
        return call(*args, **kwargs)
    except ODSQLError as exc:
        assert isinstance(exc.position, int) and 0 <= exc.position, exc
        return None


@hsettings(max_examples=300 * SCALE, deadline=timedelta(seconds=2), database=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=ODSQL_TEXT)
def test_odsql_clauses_from_any_text_raise_only_odsql_errors(text):
    _only_odsql_errors(odsql.compile_where, text, FIELDS)
    _only_odsql_errors(odsql.parse_select, text, FIELDS)
    _only_odsql_errors(odsql.parse_group_by, text, FIELDS)
    _only_odsql_errors(odsql.parse_order_by, text, NAMES)
    _only_odsql_errors(odsql.refine_exclude, [text], [text], FIELDS)


@hsettings(max_examples=120 * SCALE, deadline=timedelta(seconds=3), database=None, suppress_health_check=[HealthCheck.too_slow])
@given(where=ODSQL_TEXT, select=ODSQL_TEXT, group_by=ODSQL_TEXT, order_by=ODSQL_TEXT,
       timezone=st.sampled_from(ODSQL_TIMEZONES), refine=st.lists(ODSQL_TEXT, max_size=1))
def test_odsql_queries_from_any_text_run_or_raise_odsql_errors(odsql_source, where, select, group_by, order_by, timezone, refine):
    for query in ({"where": where}, {"select": select}, {"group_by": group_by, "select": select},
                  {"select": select, "order_by": order_by}, {"where": where, "group_by": group_by, "order_by": order_by}):
        _only_odsql_errors(odsql.run, odsql_source, FIELDS, limit=20, timezone=timezone, **query)
    _only_odsql_errors(lambda: list(odsql.scan_batches(odsql_source, FIELDS, select=select, where=where, order_by=order_by,
                                                       limit=20, timezone=timezone)[2]))
    _only_odsql_errors(lambda: odsql.count(odsql_source, FIELDS, where,
                                           filter=odsql.refine_exclude(refine, refine, FIELDS, timezone=timezone)))


def _quoted(text: str) -> str:
    quote = "'" if "'" not in text or '"' in text else '"'
    return quote + text.replace("\\", "\\\\").replace(quote, "\\" + quote) + quote


def _number(draw) -> str:
    value = draw(st.one_of(st.integers(-10**6, 10**6), st.floats(-1e9, 1e9, allow_nan=False, allow_infinity=False)))
    text = repr(value) if isinstance(value, float) else str(value)
    return text if "e" not in text else f"{value:.6f}"


ODSQL_STRINGS = st.one_of(st.sampled_from(["Paris", "Lyon", "music", "", "Fête", "東京"]), st.text(max_size=12))
DAYS = st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31))
MOMENTS = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30))


@st.composite
def _date_literal(draw) -> str:
    form = draw(st.sampled_from(["day", "month", "year", "utc", "offset", "naive"]))
    day, moment = draw(DAYS), draw(MOMENTS)
    text = {"day": day.isoformat(), "month": day.isoformat()[:7], "year": f"{day.year:04d}",
            "utc": moment.isoformat(timespec="seconds") + "Z", "offset": moment.isoformat(timespec="seconds") + "+02:00",
            "naive": moment.isoformat(timespec="seconds")}[form]
    return f"date'{text}'"


@st.composite
def _predicate(draw) -> str:
    kind = draw(st.sampled_from(["text", "number", "bool", "date", "geo", "fulltext", "null", "fields"]))
    if kind == "text":
        name = draw(st.sampled_from(TEXT_FIELDS))
        form = draw(st.sampled_from(["cmp", "in", "like", "startswith", "search"]))
        value = _quoted(draw(ODSQL_STRINGS))
        if form == "cmp":
            return f"{name} {draw(st.sampled_from(['=', '!=', '<>', '<', '>=']))} {value}"
        if form == "in":
            return f"{name} {draw(st.sampled_from(['IN', 'NOT IN']))} ({', '.join(_quoted(draw(ODSQL_STRINGS)) for _ in range(draw(st.integers(1, 3))))})"
        if form == "like":
            return f"{name} {draw(st.sampled_from(['LIKE', 'NOT LIKE']))} {_quoted(draw(ODSQL_STRINGS) + draw(st.sampled_from(['', '*', '%'])))}"
        if form == "startswith":
            return f"startswith({name}, {value})"
        return f"search({draw(st.sampled_from([name, '*']))}, {value})"
    if kind == "number":
        name = draw(st.sampled_from(NUMBER_FIELDS))
        if draw(st.booleans()):
            return f"{name} {draw(st.sampled_from(['=', '!=', '<', '<=', '>', '>=']))} {_number(draw)}"
        low, high = sorted([_number(draw), _number(draw)], key=float)
        return f"{name} IN {draw(st.sampled_from('[]'))}{low}..{high}{draw(st.sampled_from('[]'))}"
    if kind == "bool":
        return draw(st.sampled_from(["free_entry", "free_entry = true", "free_entry = false", "NOT free_entry"]))
    if kind == "date":
        name = draw(st.sampled_from(DATE_FIELDS))
        if draw(st.booleans()):
            return f"{name} {draw(st.sampled_from(['=', '!=', '<', '<=', '>', '>=']))} {draw(_date_literal())}"
        return f"{name} IN [{draw(_date_literal())}..{draw(_date_literal())}]"
    if kind == "geo":
        lon, lat = draw(st.floats(-180, 180)), draw(st.floats(-90, 90))
        if draw(st.booleans()):
            unit = draw(st.sampled_from(["m", "km", "mi", "yd", "ft", "cm", "mm"]))
            return f"within_distance(geo_point_2d, geom'POINT({lon!r} {lat!r})', {draw(st.integers(0, 50_000))}{unit})"
        lat2, lon2 = draw(st.floats(-90, 90)), draw(st.floats(-180, 180))
        return f"in_bbox(geo_point_2d, {lat!r}, {lon!r}, {lat2!r}, {lon2!r})"
    if kind == "fulltext":
        return _quoted(draw(ODSQL_STRINGS))
    if kind == "null":
        return f"{draw(st.sampled_from(NAMES))} IS {draw(st.sampled_from(['', 'NOT ']))}NULL"
    return draw(st.sampled_from(["ends_at > starts_at", "attendance >= event_id", "price < attendance"]))


VALID_WHERE = st.recursive(
    _predicate(),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["AND", "or"]), inner).map(lambda t: f"({t[0]}) {t[1]} ({t[2]})"),
        inner.map(lambda w: f"NOT ({w})"),
    ),
    max_leaves=6,
)
GROUP_KEYS = ["city", "category", "free_entry", "year(event_date)", "month(starts_at)", "day(ends_at)",
              "hour(starts_at)", "date_format(event_date, 'yyyy-MM')", "date_format(starts_at, 'yyyy')"]
AGGREGATES = ["count(*)", "sum(attendance)", "avg(price)", "min(starts_at)", "max(event_date)", "max(attendance)"]


@st.composite
def _grouped(draw) -> tuple[str, str, str]:
    keys = draw(st.lists(st.sampled_from(GROUP_KEYS), min_size=1, max_size=2, unique=True))
    aggregates = draw(st.lists(st.sampled_from(AGGREGATES), min_size=1, max_size=3, unique=True))
    aliases = [f"k{i}" for i in range(len(keys))] + [f"a{i}" for i in range(len(aggregates))]
    order = ", ".join(f"{draw(st.sampled_from(aliases))} {draw(st.sampled_from(['asc', 'desc', '']))}"
                      for _ in range(draw(st.integers(0, 2))))
    group_by = ", ".join(f"{k} as k{i}" for i, k in enumerate(keys))
    select = ", ".join([f"{k} as k{i}" for i, k in enumerate(keys)] + [f"{a} as a{i}" for i, a in enumerate(aggregates)])
    return select, group_by, order, aggregates


@hsettings(max_examples=80 * SCALE, deadline=timedelta(seconds=3), database=None, suppress_health_check=[HealthCheck.too_slow])
@given(where=VALID_WHERE, timezone=st.sampled_from(ODSQL_TIMEZONES),
       order=st.lists(st.tuples(st.sampled_from(NAMES[:-1]), st.sampled_from(["asc", "desc", ""])), max_size=2, unique_by=lambda t: t[0]))
def test_generated_where_clauses_compile_and_run(odsql_source, where, timezone, order):
    """A valid where clause compiles; the rows run() returns are the rows count() counts; the
    clause and its negation never share a row."""
    order_by = ", ".join(f"{name} {direction}" for name, direction in order) or None
    table = odsql.run(odsql_source, FIELDS, select="event_id", where=where, order_by=order_by, timezone=timezone)
    assert table.num_rows == odsql.count(odsql_source, FIELDS, where, timezone=timezone)
    negated = odsql.run(odsql_source, FIELDS, select="event_id", where=f"NOT ({where})", timezone=timezone)
    assert not set(table.column("event_id").to_pylist()) & set(negated.column("event_id").to_pylist())


@hsettings(max_examples=40 * SCALE, deadline=timedelta(seconds=3), database=None, suppress_health_check=[HealthCheck.too_slow])
@given(where=VALID_WHERE, grouped=_grouped(), timezone=st.sampled_from(ODSQL_TIMEZONES))
def test_generated_aggregations_run(odsql_source, where, grouped, timezone):
    """Valid group_by, aggregates and order_by over a valid where run; counts per group add up
    to the records the where clause matches."""
    select, group_by, order_by, aggregates = grouped
    table = odsql.run(odsql_source, FIELDS, select=select, where=where, group_by=group_by, order_by=order_by or None,
                      timezone=timezone)
    if aggregates[0] == "count(*)":
        assert sum(table.column("a0").to_pylist()) == odsql.count(odsql_source, FIELDS, where, timezone=timezone)


# ---------------------------------------------------------------------------------------------
# Format writers: arbitrary values write, or refuse with the format's documented errors
# ---------------------------------------------------------------------------------------------

WRITER_EXAMPLES = 15 * SCALE
# Arrow strings are UTF-8: lone surrogates (category Cs) cannot be in a dataset. Control
# characters, NUL included, can.
UNICODE = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
SHAPES = [shapely.Point(2.35, 48.85), shapely.Point(-180, -90), shapely.Point(180, 90),
          shapely.LineString([(0, 0), (1, 1)]), shapely.Polygon([(0, 0), (1, 0), (1, 1), (0, 0)]),
          shapely.Polygon([(0, 0), (4, 0), (4, 4), (0, 0)], [[(1, 0.5), (2, 0.5), (2, 1), (1, 0.5)]]),
          shapely.MultiPoint([(0, 0), (1, 1)]), shapely.MultiPoint([(3, 3)]),
          shapely.MultiLineString([[(0, 0), (1, 1)], [(2, 2), (3, 3)]]),
          shapely.MultiPolygon([shapely.Polygon([(0, 0), (1, 0), (1, 1), (0, 0)])]),
          shapely.GeometryCollection([shapely.Point(1, 2)])]
EDGE_DATES = st.one_of(st.sampled_from([date(1, 1, 1), date(1899, 12, 30), date(1900, 2, 28), date(1900, 3, 1),
                                        date(1970, 1, 1), date(2038, 1, 19), date(9999, 12, 31)]), DAYS)
EDGE_MOMENTS = st.one_of(
    st.sampled_from([datetime(1, 1, 1), datetime(1900, 1, 1), datetime(1969, 12, 31, 23, 59, 59, 999999),
                     datetime(1970, 1, 1), datetime(9999, 12, 31, 23, 59, 59, 999999)]),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999999)),
).map(lambda d: d.replace(tzinfo=UTC))
FLOATS = st.one_of(st.floats(), st.sampled_from([0.0, -0.0, 1e308, -1e308, 5e-324, float("nan"), float("inf"), float("-inf")]))
INTS = st.one_of(st.integers(-(2**63), 2**63 - 1), st.sampled_from([0, -(2**63), 2**63 - 1, 2**53 + 1]))
COLUMNS = {  # name: (field type, Arrow type, values)
    "title": ("text", pa.string(), UNICODE),
    "attendance": ("int", pa.int64(), INTS),
    "price": ("double", pa.float64(), FLOATS),
    "free": ("boolean", pa.bool_(), st.booleans()),
    "day": ("date", pa.date32(), EDGE_DATES),
    "starts_at": ("datetime", DATETIME, EDGE_MOMENTS),
    "category": ("text", pa.string(), st.sampled_from(["music", "", " ", "a;b", '"q"', "=1+1", "\r\n", "\x00"])),
    "geo_point_2d": ("geo_point_2d", GEO_POINT, st.fixed_dictionaries({"lon": st.floats(-180, 180), "lat": st.floats(-90, 90)})),
    "geo_shape": ("geo_shape", pa.binary(), st.sampled_from(SHAPES).map(shapely.to_wkb)),
    "organiser_name": ("text", pa.string(), UNICODE),
    "organiser_name_2": ("text", pa.string(), UNICODE),
}
WRITER_TIMEZONES = ["UTC", "Europe/Paris", "Pacific/Kiritimati", "Etc/GMT+12"]


@st.composite
def awkward_tables(draw) -> pa.Table:
    """A table shaped like samples.awkward_table, every value drawn (null included), the
    columns in any subset and order, with labels of arbitrary text."""
    names = draw(st.lists(st.sampled_from(list(COLUMNS)), min_size=1, max_size=len(COLUMNS), unique=True))
    rows = draw(st.integers(0, 6))
    columns, fields = {}, []
    for name in names:
        kind, arrow_type, values = COLUMNS[name]
        columns[name] = pa.array([draw(st.none() | values) for _ in range(rows)], arrow_type)
        fields.append(Field(name, kind, label=draw(st.one_of(st.just(""), UNICODE))))
    table = pa.table(columns)
    return table.replace_schema_metadata(with_fields(table.schema, fields).metadata)


def _read_back(name: str, data: bytes, table: pa.Table, options: dict) -> None:
    """For the formats cheap to read: every record, and the text columns value for value."""
    if options.get("compressed"):
        data = gzip.decompress(data)
    names = [f.name for f in fields_of(table.schema)]
    if options.get("use_labels"):
        names = unique_names([f.label for f in fields_of(table.schema)])
    texts = [i for i, f in enumerate(fields_of(table.schema)) if f.type == "text"]
    if name == "parquet":
        back = pq.read_table(io.BytesIO(data))
        assert back.num_rows == table.num_rows
        for i in texts:
            assert back.column(i).to_pylist() == table.column(i).to_pylist()
    elif name in ("json", "jsonl"):
        records = orjson.loads(data) if name == "json" else [orjson.loads(line) for line in data.splitlines() if line]
        assert len(records) == table.num_rows
        for i in texts:
            assert [r[names[i]] for r in records] == table.column(i).to_pylist()
    elif name == "csv":
        # A one-column record holding null is an empty line, which csv reads as no field at all.
        rows = [r or [""] for r in csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""), delimiter=";")]
        assert len(rows) == table.num_rows + 1
        assert rows[0] == names
        for i in texts:  # a null and an empty string are both written as nothing
            assert [r[i] for r in rows[1:]] == [v or "" for v in table.column(i).to_pylist()]


@pytest.mark.parametrize("format_name", REGISTRY.names())
def test_writers_take_any_values(format_name):
    fmt = REGISTRY.get(format_name)

    @hsettings(max_examples=WRITER_EXAMPLES, deadline=timedelta(seconds=5), database=None,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(table=awkward_tables(), compressed=st.booleans(), use_labels=st.booleans(),
           timezone=st.sampled_from(WRITER_TIMEZONES), batch_size=st.integers(1, 4))
    def fuzz(table, compressed, use_labels, timezone, batch_size):
        options = {"compressed": compressed, "use_labels": use_labels, "timezone": timezone}
        try:
            fmt.check(fields_of(table.schema))
            data, _ = write(format_name, table, options, batch_size=batch_size)
        except (OptionError, FormatNotApplicable):
            return
        _read_back(fmt.name, data, table, options)

    fuzz()


# ---------------------------------------------------------------------------------------------
# What the fuzzing found, pinned down
# ---------------------------------------------------------------------------------------------

def test_download_links_with_non_ascii_or_absurd_parts_are_refused_not_crashed():
    from domain.errors import Forbidden
    from domain.signing import verify

    for expires, signature in [("1700000000", "çT󩆪"), ("²", "abc"), ("9" * 5000, "abc"), ("١٢٣", "abc")]:
        with pytest.raises(Forbidden):
            verify("secret", "id", "file.csv", expires, signature)


def test_api_refuses_what_used_to_answer_500(live):
    auth = {"OSDI-API-Token": ADMIN_TOKEN}
    huge_page = live.session.get(f"{live.url}/api/v1/exports", params={"page": 72364989342026157260775}, headers=auth)
    assert huge_page.status_code == 400 and "page" in huge_page.json()["message"]
    signature = live.session.get(f"{live.url}/downloads/8ccef0c8-20a3-4c03-bc5c-748374b295a1/a.csv",
                                 params={"expires": "1700000000", "signature": "ç"})
    assert signature.status_code == 403
    boundary = "b0undary"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="\xf2\x98\x8b\xb4\x06"\r\n\r\ntrue\r\n--{boundary}--\r\n')
    multipart = live.session.post(f"{live.url}/api/management/v2/files", data=body.encode("latin-1"),
                                  headers={**auth, "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert multipart.status_code == 400 and multipart.headers["Content-Type"].startswith("application/json")


def test_openapi_documents_the_errors_operations_answer(live):
    paths = live.session.get(f"{live.url}/api/openapi.json").json()["paths"]
    assert "400" in paths["/api/v1/exports/{export_id}/approve"]["post"]["responses"]  # a body that is not JSON
    assert "400" in paths["/api/v1/exports/{export_id}"]["get"]["responses"]  # a bad ?wait=
    assert "400" in paths["/api/v2/catalog/datasets/{dataset_id}/records/{record_id}"]["get"]["responses"]  # a bad timezone
    assert "429" in paths["/api/v1/exports"]["post"]["responses"]
    assert paths["/api/v1/exports"]["get"]["parameters"][0]["schema"]["maximum"] >= 1
    for path, operations in paths.items():
        for method, operation in operations.items():
            if path != "/api/openapi.json":
                assert "503" in operation["responses"], (method, path)  # Redis away
            if path.startswith(("/api/v2/", "/api/explore/")):
                assert "401" in operation["responses"], (method, path)  # a wrong key
            if "requestBody" in operation:
                assert "413" in operation["responses"], (method, path)


def test_compressed_shapefile_streams_its_zip_through_gzip():
    import zipfile

    from tests.formats import samples

    data, _ = write("shp", samples.awkward_table(), {"compressed": True})
    names = zipfile.ZipFile(io.BytesIO(gzip.decompress(data))).namelist()
    assert "export_point.shp" in names and "export_polygon.dbf" in names


def test_xlsx_writes_datetimes_at_the_edges_of_time():
    import openpyxl

    moments = [datetime(1, 1, 1, tzinfo=UTC), datetime(2300, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)]
    table = pa.table({"at": pa.array(moments, DATETIME)})
    data, _ = write("xlsx", table)
    rows = list(openpyxl.load_workbook(io.BytesIO(data)).active.iter_rows(values_only=True))
    assert rows[1][0] == "0001-01-01T00:00:00+00:00"  # before 1900: ISO text
    assert rows[2][0].year == 2300 and rows[3][0].year == 9999


def test_labels_two_fields_share_become_distinct_columns():
    table = pa.table({"a": ["x"], "b": [1]})
    table = table.replace_schema_metadata(
        with_fields(table.schema, [Field("a", "text", "Name"), Field("b", "int", "Name")]).metadata)
    data, _ = write("parquet", table, {"use_labels": True})
    assert pq.read_table(io.BytesIO(data)).column_names == ["Name", "Name (2)"]
    data, _ = write("json", table, {"use_labels": True})
    assert orjson.loads(data) == [{"Name": "x", "Name (2)": 1}]
