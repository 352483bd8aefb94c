"""Metadata templates in the management API as the platform's clients send them — `default`,
`dcat`, `inspire`, values plain or as {"value": …}, or the flat shorthand — answered in the
template form, carried whole by the Explore API's metas; unknown templates and names are 400s
naming them."""
from __future__ import annotations

import pytest

from domain.metadata import COMPUTED, TEMPLATES
from tests.test_management import CSV, M, V2, call, publish_file

TEMPLATED = {
    "default": {"title": {"value": "Shops", "override_remote_value": False}, "description": "Where to buy",
                "keyword": {"value": ["retail", "city"]}, "theme": ["Economy"], "license": "ODbL", "language": "fr",
                "publisher": {"value": "City of Lyon"}},
    "dcat": {"creator": "Ann", "contact_email": {"value": "ann@example.org"}},
    "inspire": {"theme": ["Buildings"]},
}


async def test_templates_in_and_out(client, worker):
    created = await call(client, "POST", f"{M}/datasets/", 201, json={"dataset_id": "shops", "metadata": TEMPLATED})
    meta = created["metadata"]
    assert meta["default"]["title"] == {"value": "Shops"} and meta["default"]["keyword"] == {"value": ["retail", "city"]}
    assert meta["default"]["publisher"] == {"value": "City of Lyon"} and meta["default"]["references"] == {"value": None}
    assert meta["dcat"] == {"creator": {"value": "Ann"}, "contact_email": {"value": "ann@example.org"}}
    assert meta["inspire"] == {"theme": {"value": ["Buildings"]}}
    uid = created["dataset_uid"]

    # a template merges with what it held; the flat shorthand is the default template
    updated = await call(client, "PUT", f"{M}/datasets/{uid}/", json={"metadata": {"dcat": {"granularity": "shop"}}})
    assert set(updated["metadata"]["dcat"]) == {"creator", "contact_email", "granularity"}
    flat = await call(client, "PUT", f"{M}/datasets/{uid}/", json={"metadata": {"keywords": ["shops"], "license": "CC-BY"}})
    assert flat["metadata"]["default"]["keyword"] == {"value": ["shops"]}
    assert flat["metadata"]["default"]["license"] == {"value": "CC-BY"} and flat["metadata"]["default"]["language"] == {"value": "fr"}
    again = await call(client, "GET", f"{M}/datasets/{uid}")
    assert again["metadata"] == flat["metadata"]

    job = await publish_file(client, uid, "shops.csv", CSV.encode())
    assert job["status"] == "done", job
    metas = (await call(client, "GET", f"{V2}/datasets/shops", headers={}))["metas"]
    assert set(metas["default"]) == set(TEMPLATES["default"]) | set(COMPUTED)
    assert metas["default"]["keyword"] == ["shops"] and metas["default"]["publisher"] == "City of Lyon"
    assert metas["default"]["records_count"] == 3 and metas["default"]["modified"].endswith("Z")
    assert metas["dcat"]["granularity"] == "shop" and metas["inspire"] == {"theme": ["Buildings"]}
    facets = await call(client, "GET", f"{V2}/facets", headers={}, params={"facet": "keyword"})
    assert facets["facets"][0]["facets"] == [{"name": "shops", "value": "shops", "count": 1, "state": "displayed"}]


@pytest.mark.parametrize("metadata, named", [
    ({"ckan": {"title": "x"}}, "ckan"),
    ({"default": {"colour": "red"}}, "default.colour"),
    ({"dcat": {"title": "x"}}, "dcat.title"),
    ({"default": {"modified": "2024-01-01T00:00:00Z"}}, "default.modified"),
    ({"default": {"title": 5}}, "default.title"),
    ({"default": {"title": {"valeur": "x"}}}, "default.title"),
    ({"default": {"keyword": [1, 2]}}, "default.keyword"),
    ({"default": {"title": "x"}, "license": "ODbL"}, "not both"),
    ({"colour": "red"}, "colour"),
    ("Shops", "metadata"),
])
async def test_unknown_templates_and_names_are_named(client, metadata, named):
    body = await call(client, "POST", f"{M}/datasets/", 400, json={"metadata": metadata})
    assert named in body["message"], body
