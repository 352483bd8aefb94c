"""Aggregations in the records endpoint as the platform pages them: total_count counts groups
(1 for a plain aggregate), next and last links appear only while more groups exist, and
offset/limit page through the groups; every page is compared with the groups computed here."""
from __future__ import annotations

from collections import Counter
from urllib.parse import parse_qs, urlparse

import pytest

from domain import demo
from tests.test_explore import get_json

ROWS = demo.table().to_pylist()
V21 = "/api/explore/v2.1/catalog/datasets/demo-events/records"
BY_CITY = Counter(r["city"] for r in ROWS)
BY_CITY_YEAR = Counter((r["city"], r["starts_at"].year) for r in ROWS)


def rels(body) -> dict[str, dict[str, list[str]]]:
    return {link["rel"]: parse_qs(urlparse(link["href"]).query) for link in body["links"]}


async def test_a_plain_aggregate_is_one_group(client, demo_dataset):
    body = await get_json(client, V21, params={"select": "count(*) as n, sum(attendance) as people"})
    assert body["total_count"] == 1
    assert body["results"] == [{"n": demo.ROWS, "people": sum(r["attendance"] for r in ROWS)}]
    assert set(rels(body)) == {"self", "first", "last"}
    assert rels(body)["last"]["offset"] == ["0"]
    past = await get_json(client, V21, params={"select": "count(*) as n", "offset": "1"})
    assert past["total_count"] == 1 and past["results"] == [] and "next" not in rels(past)


@pytest.mark.parametrize("where", [None, 'category = "music"'])
async def test_groups_are_counted_and_paged(client, demo_dataset, where):
    wanted = Counter(r["city"] for r in ROWS if where is None or r["category"] == "music")
    expected = sorted(wanted.items())
    params = {"select": "city, count(*) as n", "group_by": "city", "limit": "3", **({"where": where} if where else {})}
    seen = []
    offset = 0
    while True:
        body = await get_json(client, V21, params={**params, "offset": str(offset)})
        assert body["total_count"] == len(expected)
        seen += [(r["city"], r["n"]) for r in body["results"]]
        links = rels(body)
        assert links["last"]["offset"] == [str((len(expected) - 1) // 3 * 3)]
        if "next" not in links:
            break
        assert body["results"], "a next link leads to an empty page"
        offset = int(links["next"]["offset"][0])
    assert seen == expected and offset + 3 >= len(expected)


async def test_ordered_and_multi_key_groups(client, demo_dataset):
    body = await get_json(client, V21, params={"select": "count(*) as n", "group_by": "city, year(starts_at) as year",
                                               "order_by": "n desc, city, year", "limit": "5", "offset": "5"})
    ranked = sorted(BY_CITY_YEAR.items(), key=lambda item: (-item[1], item[0][0], item[0][1]))
    assert body["total_count"] == len(BY_CITY_YEAR) > 10
    assert [(r["city"], r["year"], r["n"]) for r in body["results"]] == [(c, y, n) for (c, y), n in ranked[5:10]]
    assert {"prev", "next"} <= set(rels(body))


async def test_a_full_last_page_and_a_page_past_the_end(client, demo_dataset):
    groups = len(BY_CITY)
    full = await get_json(client, V21, params={"group_by": "city", "limit": str(groups)})
    assert full["total_count"] == groups and "next" not in rels(full)
    beyond = await get_json(client, V21, params={"group_by": "city", "limit": "2", "offset": str(groups + 4)})
    assert beyond["results"] == [] and beyond["total_count"] == groups and "next" not in rels(beyond)
    none = await get_json(client, V21, params={"group_by": "city", "where": 'city = "Atlantis"'})
    assert none["total_count"] == 0 and none["results"] == []
