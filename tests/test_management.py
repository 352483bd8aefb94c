"""The management API v2 against a real redis-server and real arq workers: datasets, files,
resources, publish/unpublish/abort/save_version jobs, realtime recovery, alternative exports,
and who may use it."""
from __future__ import annotations

import asyncio
import base64
import csv
import io
import time

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from domain.users import UserRepo
from tests.conftest import ADMIN_TOKEN, stored_keys
from tests.osdi import create, download, export_id, poll

M = "/api/management/v2"
V2 = "/api/v2/catalog"
ADMIN = {"Authorization": f"Apikey {ADMIN_TOKEN}"}
FINISHED = ("done", "failed", "aborted")

CSV = "id;name;price;when;lat;lon\n1;Alpha;1.5;2024-01-02;48.85;2.35\n2;Beta;oops;2024-01-03;45.76;4.83\n3;Gamma;3;2024-01-04;43.29;5.37\n"
GEOJSON = orjson.dumps({"type": "FeatureCollection", "features": [
    {"type": "Feature", "geometry": {"type": "Point", "coordinates": [2.35, 48.85]}, "properties": {"name": "Paris", "n": 1}},
    {"type": "Feature", "geometry": {"type": "Point", "coordinates": [4.83, 45.76]}, "properties": {"name": "Lyon", "n": 2}},
]})


async def call(client, method: str, path: str, status: int = 200, headers=ADMIN, **kwargs):
    response = await client.request(method, path, headers=headers, **kwargs)
    body = await response.json()
    assert response.status == status, (response.status, body)
    return body


async def upload(client, name: str, data: bytes, headers=ADMIN, status: int = 201):
    form = aiohttp.FormData()
    form.add_field("file", io.BytesIO(data), filename=name, content_type="application/octet-stream")
    return await call(client, "POST", f"{M}/files/", status, headers=headers, data=form)


async def poll_job(client, job_id: str, until=FINISHED, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while True:
        job = await call(client, "GET", f"{M}/jobs/{job_id}")
        if job["status"] in until:
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job['status']}"
        await asyncio.sleep(0.05)


async def new_dataset(client, dataset_id: str | None = None, **metadata) -> dict:
    body = {"metadata": {"title": "Test", **metadata}}
    if dataset_id:
        body["dataset_id"] = dataset_id
    return await call(client, "POST", f"{M}/datasets/", 201, json=body)


async def publish_file(client, uid: str, name: str, data: bytes, **resource) -> dict:
    stored = await upload(client, name, data)
    await call(client, "POST", f"{M}/datasets/{uid}/resources/", 201, json={"url": stored["url"], **resource})
    started = await call(client, "PUT", f"{M}/datasets/{uid}/publish")
    return await poll_job(client, started["job_id"])


@pytest.mark.backends("local", "s3")
async def test_a_dataset_from_upload_to_explore_and_export(client, worker):
    created = await new_dataset(client, "shops", keywords=["retail"], license="ODbL")
    uid = created["dataset_uid"]
    assert uid.startswith("da_") and created["dataset_id"] == "shops" and created["published"] is False
    assert created["status"]["name"] == "idle" and created["metadata"]["default"]["keyword"] == {"value": ["retail"]}
    assert (await client.get(f"{V2}/datasets/shops")).status == 404  # unpublished: not in the Explore API

    job = await publish_file(client, uid, "shops.csv", CSV.encode(), params={"fields": {"id": "text", "price": "double"}})
    assert len(job["job_id"]) == 40 and job["type"] == "publish"
    assert job["status"] == "done", job
    assert job["created"].endswith("Z") and job["started"] and job["finished"]
    assert job["progress"]["records_done"] == 2 and job["progress"]["rejected_rows"] == 1
    assert job["errors"] == [{"resource": job["errors"][0]["resource"], "row_number": 3,
                              "reason": "price: 'oops' is not a number"}]
    types = {f["name"]: f["type"] for f in job["result"]["fields"]}
    assert types == {"id": "text", "name": "text", "price": "double", "when": "date", "lat": "double", "lon": "double",
                     "geo_point_2d": "geo_point_2d"}

    records = await call(client, "GET", f"{V2}/datasets/shops/records?order_by=name", headers={})
    assert records["total_count"] == 2
    assert [(r["id"], r["name"], r["price"]) for r in records["results"]] == [("1", "Alpha", 1.5), ("3", "Gamma", 3.0)]
    assert records["results"][0]["geo_point_2d"] == {"lon": 2.35, "lat": 48.85}
    catalog = await call(client, "GET", f"{V2}/datasets", headers={})
    assert "shops" in [d["dataset_id"] for d in catalog["results"]]

    ready = await poll(client, ADMIN_TOKEN, export_id(await create(client, ADMIN_TOKEN, "csv", dataset_id="shops")))
    assert ready["status"] == "ready" and ready["records_count"] == 2
    status, body, _ = await download(client, ready["download_link"])
    assert status == 200 and "Gamma" in body.decode()

    detail = await call(client, "GET", f"{M}/datasets/{uid}?expand=status,changes")
    assert detail["published"] and detail["records_count"] == 2 and detail["status"]["name"] == "idle"
    assert [c["type"] for c in detail["changes"]] == ["created", "resource_added", "publish"]
    assert "status" not in await call(client, "GET", f"{M}/datasets/{uid}")
    await call(client, "GET", f"{M}/datasets/{uid}?expand=nonsense", 400)

    # metadata updates; the dataset_id is fixed while published
    renamed = await call(client, "PUT", f"{M}/datasets/{uid}/", 409, json={"dataset_id": "stores"})
    assert renamed["error_code"] == "dataset_published"
    updated = await call(client, "PUT", f"{M}/datasets/{uid}/", json={"metadata": {"title": "Shops", "theme": ["economy"]}})
    assert updated["metadata"]["default"]["title"] == {"value": "Shops"}
    assert updated["metadata"]["default"]["license"] == {"value": "ODbL"}
    assert (await call(client, "GET", f"{V2}/datasets/shops", headers={}))["metas"]["default"]["title"] == "Shops"

    # save_version → versions and the Explore API's snapshots
    saved = await poll_job(client, (await call(client, "PUT", f"{M}/datasets/{uid}/save_version", json={"name": "first"}))["job_id"])
    assert saved["status"] == "done", saved
    versions = await call(client, "GET", f"{M}/datasets/{uid}/versions/")
    assert [(v["name"], v["records_count"]) for v in versions] == [("first", 2)]
    snapshots = await call(client, "GET", f"{V2}/datasets/shops/snapshots", headers={})
    assert snapshots["total_count"] == 1 and snapshots["results"][0]["snapshot_id"] == versions[0]["version_uid"]

    # republish with new data: a GeoJSON resource replaces the CSV
    resources = await call(client, "GET", f"{M}/datasets/{uid}/resources/")
    await call(client, "DELETE", f"{M}/datasets/{uid}/resources/{resources[0]['resource_uid']}/")
    job = await publish_file(client, uid, "cities.geojson", GEOJSON)
    assert job["status"] == "done" and job["result"]["records_count"] == 2, job
    records = await call(client, "GET", f"{V2}/datasets/shops/records?order_by=n", headers={})
    assert [r["name"] for r in records["results"]] == ["Paris", "Lyon"]
    assert (await call(client, "GET", f"{M}/datasets/{uid}/versions/"))[0]["records_count"] == 2  # the saved one stays
    # the snapshot is still exportable, with its own records and fields
    snapshot_csv = await client.get(f"{V2}/datasets/shops/snapshots/{versions[0]['version_uid']}/exports/csv?delimiter=,")
    assert snapshot_csv.status == 200
    header, *lines = (await snapshot_csv.read()).decode("utf-8-sig").splitlines()
    assert "price" in header and len(lines) == 2
    assert (await client.get(f"{V2}/datasets/shops/snapshots/sv_nope/exports/csv")).status == 404

    # unpublish: gone from the Explore API, the dataset and its versions stay; then it may be renamed
    job = await poll_job(client, (await call(client, "PUT", f"{M}/datasets/{uid}/unpublish"))["job_id"])
    assert job["status"] == "done"
    assert (await client.get(f"{V2}/datasets/shops/records")).status == 404
    assert "shops" not in [d["dataset_id"] for d in (await call(client, "GET", f"{V2}/datasets", headers={}))["results"]]
    assert (await call(client, "GET", f"{M}/datasets/{uid}"))["published"] is False
    assert (await call(client, "PUT", f"{M}/datasets/{uid}", json={"dataset_id": "stores"}))["dataset_id"] == "stores"
    assert (await call(client, "GET", f"{M}/datasets/{uid}"))["dataset_id"] == "stores"
    assert len(await call(client, "GET", f"{M}/datasets/{uid}/versions")) == 1

    await call(client, "DELETE", f"{M}/datasets/{uid}")
    await call(client, "GET", f"{M}/datasets/{uid}", 404)


async def test_dataset_list_generated_ids_and_bad_input(client, demo_dataset):
    generated = await new_dataset(client)
    assert generated["dataset_id"] == generated["dataset_uid"].replace("_", "-")
    taken = await call(client, "POST", f"{M}/datasets", 409, json={"dataset_id": "demo-events"})
    assert taken["error_code"] == "dataset_id_taken" and taken["error"] == taken["message"]
    page = await call(client, "GET", f"{M}/datasets?limit=1&expand=status")
    assert page["total_count"] == 2 and len(page["results"]) == 1 and page["results"][0]["status"]["name"] == "idle"
    loaded = (await call(client, "GET", f"{M}/datasets?offset=0&limit=10"))["results"]
    demo = next(d for d in loaded if d["dataset_id"] == "demo-events")
    assert demo["published"] is True  # loaded by the operator command: published
    assert (await call(client, "GET", f"{M}/datasets/{demo['dataset_uid']}"))["records_count"] == 12_000
    for body in ({"dataset_id": "Bad Id"}, {"metadata": {"colour": "red"}}, {"metadata": {"keywords": 3}}, {"nope": 1}):
        assert (await call(client, "POST", f"{M}/datasets", 400, json=body))["error_code"]
    await call(client, "POST", f"{M}/datasets", 400, data=b"{not json", headers={**ADMIN, "Content-Type": "application/json"})
    await call(client, "GET", f"{M}/datasets/da_000000", 404)
    await call(client, "GET", f"{M}/jobs/{'0' * 40}", 404)
    await call(client, "GET", f"{M}/datasets?limit=1000", 400)
    uid = generated["dataset_uid"]
    no_resources = await call(client, "PUT", f"{M}/datasets/{uid}/publish", 400)
    assert no_resources["error_code"] == "no_resources"
    await call(client, "PUT", f"{M}/datasets/{uid}/save_version", 400)
    await call(client, "PUT", f"{M}/datasets/{uid}/abort_processing", 409)
    for resource in ({"url": "http://example.com/x.csv"}, {"url": "odsfile://nope.csv"}, {"url": "odsfile://x", "type": "pdf"}):
        await call(client, "POST", f"{M}/datasets/{uid}/resources", 400, json=resource)


@pytest.mark.backends("local", "s3-stream")
async def test_files_upload_list_download(client):
    stored = await upload(client, "../../etc/notes.csv", b"a,b\n1,2\n")
    assert stored["filename"] == "notes.csv" and stored["url"] == f"odsfile://{stored['file_id']}/notes.csv"
    assert stored["properties"]["mimetype"] == "text/csv" and stored["created"].endswith("Z")
    listed = await call(client, "GET", f"{M}/files/")
    assert [f["file_id"] for f in listed["results"]] == [stored["file_id"]]
    assert (await call(client, "GET", f"{M}/files/{stored['file_id']}"))["filename"] == "notes.csv"
    response = await client.get(f"{M}/files/download_file/{stored['file_id']}", headers=ADMIN)
    assert response.status == 200 and await response.read() == b"a,b\n1,2\n"
    assert "notes.csv" in response.headers["Content-Disposition"]
    await call(client, "GET", f"{M}/files/{'f' * 32}", 404)
    not_multipart = await call(client, "POST", f"{M}/files/", 400, data=b"raw", headers={**ADMIN, "Content-Type": "text/csv"})
    assert "multipart" in not_multipart["message"]


@pytest.mark.backends("local", "s3")
async def test_upload_over_the_limit_is_413_and_keeps_nothing(make_settings):
    settings = make_settings(max_upload_bytes=10_000)
    async with TestClient(TestServer(create_app(settings))) as client:
        assert (await upload(client, "small.csv", b"x" * 9_000))["properties"]["size"] == 9_000
        too_big = await upload(client, "big.csv", b"x" * 200_000, status=413)
        assert too_big["error_code"] == "request_too_large"

        async def stream():  # no Content-Length: refused while streaming
            for _ in range(20):
                yield b"y" * 1000
        form = aiohttp.MultipartWriter("form-data")
        part = form.append(stream(), {"Content-Type": "text/csv"})
        part.set_content_disposition("form-data", name="file", filename="chunked.csv")
        response = await client.post(f"{M}/files/", data=form, headers=ADMIN)
        assert response.status == 413, await response.text()
    assert len(stored_keys(settings, "files")) == 1  # the small one only
    assert list((settings.data_dir / ".partial").iterdir()) == []


def big_csv(rows: int) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "label", "value", "day"])
    for i in range(rows):
        writer.writerow([i, f"row {i}", i * 0.5, f"2024-01-{i % 28 + 1:02d}"])
    return out.getvalue().encode()


async def test_abort_a_running_publish_keeps_the_published_records(client, worker):
    uid = (await new_dataset(client, "grows"))["dataset_uid"]
    first = await publish_file(client, uid, "small.csv", big_csv(5))
    assert first["status"] == "done"
    resources = await call(client, "GET", f"{M}/datasets/{uid}/resources")
    await call(client, "DELETE", f"{M}/datasets/{uid}/resources/{resources[0]['resource_uid']}")
    stored = await upload(client, "big.csv", big_csv(400_000))
    await call(client, "POST", f"{M}/datasets/{uid}/resources", 201, json={"url": stored["url"], "type": "csv"})
    publish = (await call(client, "PUT", f"{M}/datasets/{uid}/publish"))["job_id"]

    busy = await call(client, "PUT", f"{M}/datasets/{uid}/publish", 409)  # one job at a time
    assert busy["error_code"] == "dataset_busy"
    deadline = time.monotonic() + 30
    while True:
        job = await call(client, "GET", f"{M}/jobs/{publish}")
        if job["status"] == "processing" and job["progress"].get("records_done", 0) > 0:
            break
        assert job["status"] in ("queued", "processing"), job
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    status = (await call(client, "GET", f"{M}/datasets/{uid}?expand=status"))["status"]
    assert status["name"] == "processing" and status["job_id"] == publish

    abort = (await call(client, "PUT", f"{M}/datasets/{uid}/abort_processing"))["job_id"]
    assert (await call(client, "GET", f"{M}/datasets/{uid}?expand=status"))["status"]["name"] in ("aborting_processing", "idle")
    assert (await poll_job(client, abort))["result"] == {"aborted_job": publish, "outcome": "aborted"}
    aborted = await call(client, "GET", f"{M}/jobs/{publish}")
    assert aborted["status"] == "aborted" and 0 < aborted["progress"]["records_done"] < 400_000
    records = await call(client, "GET", f"{V2}/datasets/grows/records?limit=0", headers={})
    assert records["total_count"] == 5
    assert (await call(client, "GET", f"{M}/datasets/{uid}?expand=status"))["status"]["name"] == "idle"


@pytest.mark.backends("local", "s3")
async def test_realtime_push_recover_and_scratch(client, worker):
    uid = (await new_dataset(client, "sensors"))["dataset_uid"]
    assert (await publish_file(client, uid, "s.csv", b"sensor,value\na,1\n"))["status"] == "done"
    push = await call(client, "POST", f"{M}/datasets/{uid}/push_key", 201)
    url = f"/api/push/1.0/{uid}/push?pushkey={push['push_key']}"
    await call(client, "POST", url, json=[{"sensor": "b", "value": 2}, {"sensor": "c", "value": "high"}], headers={})
    await call(client, "POST", url, json={"sensor": "d", "value": 4}, headers={})
    await call(client, "POST", f"/api/push/1.0/{uid}/push?pushkey=wrong", 401, json={"sensor": "x"}, headers={})
    await call(client, "POST", url, 400, json=[1, 2], headers={})
    assert (await call(client, "GET", f"{M}/datasets/{uid}/recovery_data"))["records"] == 3

    job = await poll_job(client, (await call(client, "PUT", f"{M}/datasets/{uid}/recover_realtime_records"))["job_id"])
    assert job["status"] == "done", job
    assert job["result"]["records_recovered"] == 2 and job["errors"][0]["row_number"] == 2  # the push sequence number
    records = await call(client, "GET", f"{V2}/datasets/sensors/records?order_by=sensor", headers={})
    assert [(r["sensor"], r["value"]) for r in records["results"]] == [("a", 1), ("b", 2), ("d", 4)]
    again = await poll_job(client, (await call(client, "PUT", f"{M}/datasets/{uid}/recover_realtime_records"))["job_id"])
    assert again["result"]["records_recovered"] == 0  # nothing applied twice

    scratch = await poll_job(client, (await call(client, "PUT", f"{M}/datasets/{uid}/scratch_recovery_data"))["job_id"])
    assert scratch["result"] == {"records_scratched": 3}
    assert (await call(client, "GET", f"{M}/datasets/{uid}/recovery_data"))["records"] == 0
    assert (await call(client, "GET", f"{V2}/datasets/sensors/records", headers={}))["total_count"] == 3


@pytest.mark.backends("local", "s3-stream")
async def test_alternative_exports(client):
    uid = (await new_dataset(client, "with-extras"))["dataset_uid"]
    stored = await upload(client, "sorted_export.csv", b"0123456789" * 100)
    by_name = await call(client, "POST", f"{M}/datasets/{uid}/alternative_exports", 201, json={"url": "odsfile://sorted_export.csv"})
    assert by_name["export_uid"].startswith("ae_") and by_name["url"] == "odsfile://sorted_export.csv"
    by_url = await call(client, "POST", f"{M}/datasets/{uid}/alternative_exports/", 201, json={"url": stored["url"]})
    listed = await call(client, "GET", f"{M}/datasets/{uid}/alternative_exports")
    assert {e["export_uid"] for e in listed} == {by_name["export_uid"], by_url["export_uid"]}
    assert (await call(client, "GET", f"{M}/datasets/{uid}/alternative_exports/{by_name['export_uid']}"))["url"] == by_name["url"]

    response = await client.get(f"{M}/datasets/{uid}/download_alternative_export/{by_name['export_uid']}",
                                headers={**ADMIN, "Range": "bytes=10-19"})
    assert response.status == 206 and await response.read() == b"0123456789"
    assert response.headers["Content-Type"].startswith("text/csv")
    assert 'filename="sorted_export.csv"' in response.headers["Content-Disposition"]

    for url in ("odsfile://../secret_key", "odsfile://../../etc/passwd", "/etc/passwd", "file:///etc/passwd",
                "odsfile:///etc/passwd", "odsfile://", "https://example.com/x.csv", 42, f"odsfile://{stored['file_id']}/../x"):
        refused = await call(client, "POST", f"{M}/datasets/{uid}/alternative_exports", 400, json={"url": url})
        assert refused["error_code"] in ("invalid_url", "unknown_file")
    await call(client, "DELETE", f"{M}/datasets/{uid}/alternative_exports/{by_name['export_uid']}")
    await call(client, "GET", f"{M}/datasets/{uid}/alternative_exports/{by_name['export_uid']}", 404)
    await call(client, "GET", f"{M}/datasets/{uid}/download_alternative_export/ae_000000", 404)


async def test_who_may_use_the_management_api(client, state, user_token):
    missing = await client.get(f"{M}/datasets")
    assert missing.status == 401 and missing.headers["WWW-Authenticate"].startswith("Basic")
    assert (await missing.json())["error_code"] == "unauthorized"
    erin = await user_token("erin")
    assert (await call(client, "GET", f"{M}/datasets", 403, headers={"OSDI-API-Token": erin}))["error_code"] == "forbidden"
    await call(client, "POST", f"{M}/files/", 403, headers={"Authorization": f"Apikey {erin}"})
    await call(client, "GET", f"{M}/datasets", 401, headers={"Authorization": "Apikey wrong"})
    assert (await call(client, "GET", f"{M}/datasets", headers={"OSDI-API-Token": ADMIN_TOKEN}))["total_count"] == 0

    users = UserRepo(state, ADMIN_TOKEN)
    await users.add("ada", admin=True)
    await users.set_password("ada", "correct horse")
    await users.set_password("erin", "erin's password")

    def basic(name: str, password: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()}
    created = await call(client, "POST", f"{M}/datasets", 201, headers=basic("ada", "correct horse"), json={})
    assert created["dataset_uid"].startswith("da_")
    await call(client, "GET", f"{M}/datasets", 401, headers=basic("ada", "wrong horse"))
    await call(client, "GET", f"{M}/datasets", 401, headers=basic("nobody", "correct horse"))
    await call(client, "GET", f"{M}/datasets", 401, headers={"Authorization": "Basic !!!"})
    await call(client, "GET", f"{M}/datasets", 403, headers=basic("erin", "erin's password"))
    with pytest.raises(Exception):
        await users.set_password("ada", "short")
