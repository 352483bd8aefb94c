"""The attacker's long chains: where clauses of thousands of terms, long refine and exclude
lists, many select items, the same inside a records href, at every entry point. Past the
term limit each is a 400 ODSQLError naming the limit; at the limit the query runs and holds
exactly the records it names. Before the limit existed a 10,000-term OR killed the web
process (pyarrow overflowed the C stack), which would take this test run down with it."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.dataset as pads
import pytest

from domain import demo, odsql
from domain.fields import Field
from domain.odsql.cost import MAX_CLAUSE_CHARS, MAX_LIST_VALUES, MAX_TERMS
from tests.conftest import ADMIN_TOKEN
from tests.osdi import export_body, headers

V2 = "/api/v2/catalog/datasets/demo-events"
ROWS = demo.table().to_pylist()


def ors(count: int, template: str = "event_id = {i}") -> str:
    return " OR ".join(template.format(i=i + 1) for i in range(count))


def ands(count: int) -> str:
    return " AND ".join(f"attendance >= {i % 50}" for i in range(count))


async def refused(response, clause: str | None = None) -> dict:
    body = await response.json()
    assert response.status == 400, body
    assert body["error_code"] == "ODSQLError", body
    if clause:
        assert body["clause"] == clause, body
    return body


async def post(client, **query) -> object:
    return await client.post("/api/v1/exports", json=export_body("csv", query=query), headers=headers(ADMIN_TOKEN))


@pytest.mark.parametrize("where", [ors(10_000), ands(10_000), ors(10_000, "attendance > {i}"),
                                   ors(MAX_TERMS + 1, "title = 'x{i}'")])
async def test_a_post_past_the_term_limit_is_a_400_naming_it(client, demo_dataset, where):
    body = await refused(await post(client, where=where), "where")
    assert (f"more than {MAX_TERMS} terms" in body["message"]
            or f"the limit is {MAX_CLAUSE_CHARS}" in body["message"]), body
    assert (await client.get(f"{V2}/records?limit=1")).status == 200  # the process still serves


async def test_the_budget_is_shared_by_every_clause_of_a_request(client, demo_dataset):
    half = MAX_TERMS // 2
    body = await refused(await post(client, where=[ors(half), ors(half)], refine=["city:Lyon"]), "refine")
    assert f"more than {MAX_TERMS} terms" in body["message"]
    select = ", ".join(f"event_id as e{i}" for i in range(MAX_TERMS + 1))
    await refused(await post(client, select=select), "select")
    await refused(await post(client, where=ors(MAX_TERMS - 2), order_by="event_id, title, city"), "order_by")


async def test_a_records_href_is_held_to_the_same_limit(client, demo_dataset):
    href = f"http://portal.example{V2}/records?where={ors(5_000)}"
    body = export_body("csv")
    body["_links"]["osdi:resource"]["href"] = href
    response = await client.post("/api/v1/exports", json=body, headers=headers(ADMIN_TOKEN))
    await refused(response, "where")


async def test_long_get_queries_are_refused_on_every_explore_route(client, demo_dataset):
    where = ors(MAX_TERMS + 1, "event_id={i}")
    for path in ("records", "aggregates", "facets", "exports/csv", "exports/geojson"):
        await refused(await client.get(f"{V2}/{path}", params={"where": where}), "where")
    refine = [("refine", f"city:Town {i}") for i in range(MAX_TERMS + 1)]
    response = await client.get(f"{V2}/records", params=refine)
    assert response.status == 400, await response.text()
    too_long = await client.get(f"{V2}/records", params={"where": ors(4_000, "event_id={i}")})
    assert too_long.status in (400, 414)  # past the request line's limit, aiohttp's parser refuses it
    assert (await client.get(f"{V2}/records?limit=1")).status == 200


async def test_at_the_limit_the_query_runs_and_is_exact(client, demo_dataset):
    """Half the limit in OR-ed equalities (one set lookup), half in ranges of another field (a
    tree of comparisons): the records are exactly those a Python filter keeps."""
    half = (MAX_TERMS - 2) // 2
    ids = set(range(1, half + 1))
    attendances = set(range(0, 2 * half, 2))
    where = f"({ors(half)}) OR ({' OR '.join(f'attendance IN [{a}..{a}]' for a in sorted(attendances))})"
    response = await post(client, where=where, order_by="event_id")
    assert response.status == 201, await response.text()
    expected = sorted(r["event_id"] for r in ROWS if r["event_id"] in ids or r["attendance"] in attendances)
    response = await client.get(f"{V2}/records", params={"where": where, "select": "event_id", "limit": "100",
                                                         "order_by": "event_id"})
    body = await response.json()
    assert response.status == 200, body
    assert body["total_count"] == len(expected) > 100
    assert [r["event_id"] for r in body["results"]] == expected[:100]


def test_chains_far_past_the_limit_compile_to_shallow_trees():
    """With the limits lifted, 20,000 OR-ed equalities are one set lookup whatever their
    number, and the NOT of OR-ed equalities leaves nulls out as the ORs would."""
    fields = [Field("a", "int")]
    table = pa.table({"a": pa.array(list(range(100)) + [None])})
    budget = odsql.Budget(10**6)
    where = " OR ".join(f"a = {i}" for i in range(20_000))
    original = odsql.cost.MAX_CLAUSE_CHARS
    try:
        odsql.cost.MAX_CLAUSE_CHARS = 10**7
        condition = odsql.where_all(where, fields, budget=budget)
    finally:
        odsql.cost.MAX_CLAUSE_CHARS = original
    assert str(condition).count("is_in") == 1 and str(condition).count(" or ") == 1
    assert pads.dataset(table).count_rows(filter=condition) == 100
    for text, kept in (("a = 1 OR a = 2", 2), ("NOT (a = 1 OR a = 2)", 98), ("a = 1 OR a = 2 OR a > 97", 4)):
        assert pads.dataset(table).count_rows(filter=odsql.where_all(text, fields)) == kept, text


def test_an_in_list_and_a_clause_have_bounds_of_their_own():
    fields = [Field("a", "int")]
    values = ", ".join(str(i) for i in range(MAX_LIST_VALUES + 1))
    with pytest.raises(odsql.ODSQLError, match=f"more than {MAX_LIST_VALUES} values"):
        odsql.where_all(f"a IN ({values})", fields)
    half = ", ".join(str(i) for i in range(MAX_LIST_VALUES // 2))
    assert odsql.where_all(f"a IN ({half}) OR a IN ({half})", fields) is not None
    with pytest.raises(odsql.ODSQLError, match="IN lists hold more than"):  # the values of one request together
        odsql.where_all([f"a IN ({half})", f"a IN ({half}, 1)"], fields)
    with pytest.raises(odsql.ODSQLError, match="characters long"):
        odsql.where_all("a = 1 OR " * (MAX_CLAUSE_CHARS // 9) + "a = 2", fields)
