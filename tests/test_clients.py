"""Clients written for OpenDataSoft, unchanged, against a live exportd: odsclient 0.8.4 (which
sends csv_separator=; and use_labels_for_header with every format) and the platform's own
JavaScript client, @opendatasoft/api-client, run by node. The Explore API's export routes
ignore another format's options as the platform does, and still refuse misspelled options and
bad values of the requested format."""
from __future__ import annotations

import asyncio
import csv
import io
import shutil
import subprocess
from pathlib import Path

import orjson
import pytest
from odsclient import ODSClient

from domain import demo
from tests.conftest import ADMIN_TOKEN
from tests.osdi import export_body, headers

ROWS = demo.table().to_pylist()
JS = Path(__file__).parent / "js"
V21 = "/api/explore/v2.1/catalog/datasets/demo-events"


def base_url(client) -> str:
    return str(client.make_url("")).rstrip("/")


KEYRING = pytest.mark.filterwarnings("ignore:`keyring` is not installed:UserWarning")  # odsclient's default looks for one


@KEYRING
async def test_odsclient_gets_the_whole_dataset_as_csv(client, demo_dataset):
    ods = ODSClient(base_url=base_url(client))
    text = await asyncio.to_thread(ods.get_whole_dataset, "demo-events")  # csv, csv_separator=;, labels
    header, *lines = list(csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""), delimiter=";"))
    assert header[:2] == ["Event ID", "Title"] and len(lines) == demo.ROWS
    assert [int(line[0]) for line in lines] == [r["event_id"] for r in ROWS]
    assert [line[1] for line in lines] == [r["title"] for r in ROWS]


@KEYRING
async def test_odsclient_gets_the_whole_dataset_as_json(client, demo_dataset):
    ods = ODSClient(base_url=base_url(client))
    text = await asyncio.to_thread(ods.get_whole_dataset, "demo-events", format="json", use_labels_for_header=False)
    records = orjson.loads(text)
    assert [r["event_id"] for r in records] == [r["event_id"] for r in ROWS]
    assert [r["city"] for r in records] == [r["city"] for r in ROWS]


@pytest.mark.parametrize("path", [f"{V21}/exports/json", "/explore/dataset/demo-events/download/"])
async def test_other_formats_options_are_ignored_own_ones_checked(client, demo_dataset, path):
    plain = {"format": "json"} if "download" in path else {}

    async def get(**params):
        response = await client.get(path, params={**plain, "limit": "3", **params})
        return response.status, await response.read()

    status, body = await get(csv_separator=";", delimiter=",", quote_all="true", dtstart_field="nosuch", name_field="x")
    assert status == 200 and len(orjson.loads(body)) == 3, body[:300]
    for params, named in (({"csv_separater": ";"}, "csv_separater"), ({"compresed": "true"}, "compresed"),
                          ({"compressed": "maybe"}, "compressed"), ({"timezone": "Mars/Olympus"}, "timezone"),
                          ({"epsg": "3857"}, "epsg")):
        status, body = await get(**params)
        error = orjson.loads(body)
        assert status == 400 and named in error["message"], (params, error)
    # a csv export still checks its own options
    csv_path = f"{V21}/exports/csv" if "download" not in path else path
    response = await client.get(csv_path, params={"format": "csv", "delimiter": "x", "limit": "3"})
    assert response.status == 400 and "delimiter" in (await response.json())["message"]


async def test_the_osdi_api_stays_strict(client, demo_dataset):
    response = await client.post("/api/v1/exports", json=export_body("json", options={"delimiter": ";"}),
                                 headers=headers(ADMIN_TOKEN))
    body = await response.json()
    assert response.status == 400 and "delimiter" in body["message"], body


@pytest.fixture(scope="session")
def api_client_js() -> Path:
    """tests/js with @opendatasoft/api-client installed from its lock file (once)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip("node and npm are needed to run @opendatasoft/api-client; install Debian's nodejs and npm")
    installed = JS / "node_modules" / "@opendatasoft" / "api-client" / "package.json"
    if not installed.exists() or orjson.loads(installed.read_bytes())["version"] != "21.8.1":
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=JS, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            pytest.skip(f"npm could not install @opendatasoft/api-client (registry unreachable?): {done.stderr[-500:]}")
    return JS / "api_client.cjs"


async def run_js(script: Path, base: str) -> dict:
    process = await asyncio.create_subprocess_exec("node", str(script), base, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode()
    return orjson.loads(out)


async def test_the_platforms_javascript_client(client, demo_dataset, api_client_js):
    found = await run_js(api_client_js, base_url(client))
    failed = {name: answer for name, answer in found.items() if "error" in answer and name != "unknown_field"}
    assert not failed, failed
    ok = {name: answer["ok"] for name, answer in found.items() if "ok" in answer}
    assert [d["dataset_id"] for d in ok["catalog"]["results"]] == ["demo-events"]
    assert ok["dataset"]["metas"]["default"]["title"] == demo.TITLE
    lille = [r["event_id"] for r in ROWS if r["city"] == "Lille"]
    assert ok["records"]["total_count"] == len(lille)
    assert ok["records"]["results"] == [{"event_id": i, "city": "Lille"} for i in lille[:5]]
    assert ok["export_json"] == [{"event_id": i, "city": "Lille"} for i in lille]
    exported = ok["export_csv"]
    assert exported["status"] == 200 and exported["type"].startswith("text/csv")
    assert [row[0] for row in csv.reader(io.StringIO(exported["body"].lstrip("\ufeff")), delimiter=";")][1:] == [str(i) for i in lille]
    assert {f["name"] for f in ok["facets"]["facets"][0]["facets"]} == {r["category"] for r in ROWS}
    cities = sorted({r["city"] for r in ROWS})
    for name, offset in (("groups", 0), ("grouped_page", 3)):
        page = ok[name]
        assert page["total_count"] == len(cities)  # groups, not records
        assert [g["city"] for g in page["results"]] == cities[offset:offset + 3]
        assert [g["n"] for g in page["results"]] == [sum(1 for r in ROWS if r["city"] == c) for c in cities[offset:offset + 3]]
        assert any(link["rel"] == "next" for link in page["links"]) == (offset + 3 < len(cities))
    features = next(f for f in ok["catalog_facets"]["facets"] if f["name"] == "features")
    assert {v["name"]: v["count"] for v in features["facets"]} == {"analyze": 1, "geo": 1, "timeserie": 1}
    listed = list(csv.DictReader(io.StringIO(ok["catalog_export_csv"]["body"].lstrip("\ufeff")), delimiter=";"))
    assert [(r["dataset_id"], int(r["records_count"])) for r in listed] == [("demo-events", demo.ROWS)]
    assert [(r["dataset_id"], r["title"]) for r in ok["catalog_export_json"]] == [("demo-events", demo.TITLE)]
    unknown = found["unknown_field"]
    assert unknown["status"] == 400 and "nosuchfield" in unknown["detail"]  # a UserError, by its status
