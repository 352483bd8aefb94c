"""The `exportd` command line end to end: the real app on a real port, a real arq worker, and
the CLI run as a subprocess (`python -m api.cli`, URL and token from EXPORTD_URL and
EXPORTD_TOKEN) — exports with --wait and -o, cancel, rejected and failed exports' exit codes,
list/show --json, datasets list/load, users add/token, HTTP error messages, and an interrupted
download continued with Range."""
from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from api.app import create_app
from api.auth import HEADER
from api.cli import client as cli_client
from api.cli import datasets as cli_datasets
from api.cli import exports as cli_exports
from api.cli.progress import Progress
from domain import exports as ex
from domain import jobs as jb
from domain.redis_server import free_port
from domain.settings import Settings
from tests.conftest import ADMIN_TOKEN

PARIS = "city = 'Paris'"


@dataclass
class Run:
    code: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out)


Cli = Callable[..., Awaitable[Run]]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Settings], Awaitable[str]]]:
    """serve(settings) runs the app on a free port of 127.0.0.1 and returns its URL."""
    servers: list[TestServer] = []

    async def start(settings: Settings) -> str:
        server = TestServer(create_app(settings), host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return str(server.make_url("")).rstrip("/")

    yield start
    for server in servers:
        await server.close()


@pytest.fixture
async def url(serve, settings) -> str:
    return await serve(settings)


@pytest.fixture
def cli(url, tmp_path) -> Cli:
    """cli(*args, token=…, url=…) runs `python -m api.cli` in tmp_path; the event loop (and
    the server on it) goes on meanwhile."""
    async def run(*args: str, token: str | None = ADMIN_TOKEN, service: str | None = None, stdin: bytes = b"") -> Run:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EXPORTD_")}
        env["EXPORTD_URL"] = service or url
        if token is not None:
            env["EXPORTD_TOKEN"] = token
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "api.cli", *args, cwd=tmp_path, env=env,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(process.communicate(stdin), 120)
        return Run(process.returncode, out.decode(), err.decode())
    return run


async def api(url: str, method: str, path: str, token: str = ADMIN_TOKEN, **kwargs) -> dict:
    async with aiohttp.ClientSession() as session:
        async with session.request(method, url + path, headers={HEADER: token}, **kwargs) as response:
            body = await response.json(content_type=None)
            assert response.status < 300, (response.status, body)
            return body


def rows(path: Path, delimiter: str = ";") -> list[dict[str, str]]:
    """An exported CSV's records (with a BOM and `;` by default, as the platform writes them)."""
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig")), delimiter=delimiter))


def test_the_cli_shares_the_services_protocol_constants():
    assert cli_client.TOKEN_HEADER == HEADER
    assert cli_exports.LIVE == ex.LIVE and cli_exports.READY == ex.READY
    assert cli_datasets.FINISHED == jb.FINISHED


async def test_export_wait_downloads_the_query(cli, url, worker, demo_dataset, tmp_path):
    paris = (await api(url, "GET", f"/api/v2/catalog/datasets/{demo_dataset}/records", params={"where": PARIS, "limit": 0}))
    run = await cli("--json", "export", demo_dataset, "--format", "csv", "--where", PARIS, "--select", "event_id,title,city",
                    "--option", "delimiter=|", "-o", "paris.csv", "--progress")
    assert run.code == 0, run.err
    export = run.json()
    assert export["status"] == "ready" and export["records_count"] == paris["total_count"] > 0
    records = rows(tmp_path / "paris.csv", delimiter="|")
    assert len(records) == paris["total_count"] and list(records[0]) == ["event_id", "title", "city"]
    assert {r["city"] for r in records} == {"Paris"}
    assert (tmp_path / "paris.csv").stat().st_size == export["file_size"]
    assert not list(tmp_path.glob("paris.csv.*.part"))
    assert f"export {cli_exports.export_id(export)}: queued" in run.err
    assert "downloading [" in run.err and "100%" in run.err  # --progress: a bar though stderr is a pipe

    plain = await cli("export", demo_dataset, "-f", "json", "--wait")  # no -o: the export's file name, in the current directory
    assert plain.code == 0, plain.err
    assert plain.out.startswith(f"{demo_dataset}.json: 12,000 records")
    assert len(json.loads((tmp_path / f"{demo_dataset}.json").read_text(encoding="utf-8"))) == 12_000
    assert "downloading: " in plain.err and "[" not in plain.err  # plain lines when stderr is no terminal


async def test_export_without_wait_list_show_and_cancel(cli, url, demo_dataset):
    created = await cli("export", demo_dataset, "--format", "csv", "--json")  # no worker: it stays queued
    assert created.code == 0, created.err
    ident = cli_exports.export_id(created.json())
    assert created.json()["status"] == "queued"
    human = await cli("export", demo_dataset, "--format", "geojson", "--name", "the map", "--where", "city = 'Paris'",
                      "--option", "epsg=2154")
    assert human.code == 0 and human.out.startswith("export ") and human.out.strip().endswith(": queued")

    listed = await cli("exports", "list", "--json")
    assert listed.code == 0, listed.err
    assert [cli_exports.export_id(e) for e in listed.json()][1] == ident  # newest first
    table = await cli("exports", "list")
    assert table.out.splitlines()[0].split() == ["ID", "STATUS", "FORMAT", "DATASET", "QUERY", "RECORDS", "SIZE",
                                                 "CREATED", "OWNER", "NAME"]
    assert "the map" in table.out and "page 1 of 1 (2 exports)" in table.out
    assert "city = 'Paris'; epsg=2154" in table.out.splitlines()[1] and demo_dataset in table.out.splitlines()[2]
    geojson = await cli("exports", "list", "--json", "--status", "queued", "--dataset", demo_dataset, "--per-page", "1")
    assert [e["export_type"] for e in geojson.json()] == ["geojson"]
    assert (await cli("exports", "list", "--json", "--dataset", "other-dataset")).json() == []
    assert (await cli("exports", "list", "--json", "--status", "ready")).json() == []
    bad = await cli("exports", "list", "--dataset", "Not A Dataset")
    assert bad.code == 2 and "query parameter 'dataset' must be a dataset id" in bad.err

    shown = await cli("exports", "show", ident, "--json")
    assert shown.code == 0 and shown.json()["status"] == "queued" and shown.json()["export_type"] == "csv"
    assert "status: queued" in (await cli("exports", "show", ident)).out

    cancelled = await cli("exports", "cancel", ident)
    assert cancelled.code == 0 and f"export {ident} cancelled" in cancelled.out
    gone = await cli("exports", "show", ident)
    assert gone.code == 2 and gone.err.startswith(f"exportd: 404 Not Found: no export '{ident}'")


async def test_options_are_sent_as_the_json_types_the_format_declares(cli, url, demo_dataset):
    """A JSON body's booleans and integers must be JSON ones; the command line has only text,
    so it types each option by the format's x-formats entry."""
    created = await cli("export", demo_dataset, "--format", "geojson", "--json", "--option", "compressed=yes",
                        "--option", "epsg=2154", "--option", "delimiter=0")
    assert created.code == 2 and "delimiter" in created.err  # geojson has none: the service names it
    created = await cli("export", demo_dataset, "--format", "geojson", "--json", "--option", "compressed=yes",
                        "--option", "epsg=2154")
    assert created.code == 0, created.err
    shown = await api(url, "GET", f"/api/v1/exports/{cli_exports.export_id(created.json())}")
    assert shown["options"]["compressed"] is True and shown["options"]["epsg"] == 2154
    gpx = await cli("export", demo_dataset, "--format", "gpx", "--json", "--option", "description_field_list=title,city")
    assert gpx.code == 0, gpx.err
    shown = await api(url, "GET", f"/api/v1/exports/{cli_exports.export_id(gpx.json())}")
    assert shown["options"]["description_field_list"] == ["title", "city"]
    csv = await cli("export", demo_dataset, "--format", "csv", "--json", "--option", "list_separator=0", "--option", "use_labels=off")
    assert csv.code == 0, csv.err
    assert (await api(url, "GET", f"/api/v1/exports/{cli_exports.export_id(csv.json())}"))["options"]["list_separator"] == "0"
    bad = await cli("export", demo_dataset, "--format", "csv", "--option", "compressed=maybe")
    assert bad.code == 2 and "--option compressed takes true or false, not 'maybe'" in bad.err


async def test_a_rejected_export_exits_1_with_its_detail(cli, serve, make_settings, demo_dataset, user_token):
    service = await serve(make_settings(approval_rows=100))
    token = await user_token("carol")
    waiting = asyncio.create_task(cli("export", demo_dataset, "--format", "csv", "--wait", token=token, service=service))
    for _ in range(600):
        listed = await api(service, "GET", "/api/v1/exports")
        if listed["total_records"]:
            break
        await asyncio.sleep(0.05)
    export = listed["_embedded"]["osdi:exports"][0]
    assert export["status"] == "pending_approval", export
    await api(service, "POST", f"/api/v1/exports/{cli_exports.export_id(export)}/reject", json={"detail": "ask for one city"})
    run = await waiting
    assert run.code == 1
    assert "pending_approval (exports of more than 100 records wait for an administrator's approval)" in run.err
    assert run.err.strip().endswith(f"exportd: export {cli_exports.export_id(export)} was rejected: ask for one city")
    assert run.out == ""


async def test_a_failed_export_exits_1_with_its_detail(cli, make_settings, start_worker, demo_dataset, tmp_path):
    start_worker(make_settings(max_export_bytes=50_000))
    run = await cli("export", demo_dataset, "--format", "json", "-o", "big.json", "--json")
    assert run.code == 1
    assert run.json()["status"] == "failed" and "50,000-byte limit" in run.json()["detail"]
    assert "failed: " in run.err and "50,000-byte limit" in run.err.splitlines()[-1]
    assert sorted(p.name for p in tmp_path.glob("big.json*")) == []


async def test_an_interrupted_download_continues_with_range(cli, worker, demo_dataset, tmp_path):
    first = await cli("export", demo_dataset, "--format", "csv", "-o", "whole.csv", "--json")
    assert first.code == 0, first.err
    ident = cli_exports.export_id(first.json())
    whole = (tmp_path / "whole.csv").read_bytes()
    half = len(whole) // 2

    part = tmp_path / f"again.csv.{ident}.part"
    part.write_bytes(whole[:half])  # left by an interrupted run
    run = await cli("exports", "download", ident, "-o", "again.csv")
    assert run.code == 0, run.err
    assert f"continuing {part.name} from byte {half:,}" in run.err
    assert (tmp_path / "again.csv").read_bytes() == whole and not part.exists()

    # the bytes before the offset are not fetched again: a marked prefix stays as it is
    (tmp_path / f"marked.csv.{ident}.part").write_bytes(b"#" * 100)
    run = await cli("exports", "download", ident, "-o", "marked.csv")
    assert run.code == 0, run.err
    assert (tmp_path / "marked.csv").read_bytes() == b"#" * 100 + whole[100:]

    # another export's part, or an existing FILE, is never continued: FILE is replaced
    (tmp_path / "other.csv.00000000-0000-0000-0000-000000000000.part").write_bytes(b"#" * 100)
    (tmp_path / "other.csv").write_bytes(b"#" * 100)
    run = await cli("exports", "download", ident, "-o", "other.csv")
    assert run.code == 0 and (tmp_path / "other.csv").read_bytes() == whole

    (tmp_path / f"longer.csv.{ident}.part").write_bytes(whole + b"junk")  # cannot be this file's start: downloaded afresh
    run = await cli("exports", "download", ident, "-o", "longer.csv")
    assert run.code == 0 and (tmp_path / "longer.csv").read_bytes() == whole


async def test_datasets_load_and_list(cli, worker, demo_dataset, tmp_path):
    source = tmp_path / "shops.csv"
    source.write_text("id;name;price\n1;Alpha;1.5\n2;Beta;oops\n3;Gamma;3\n", encoding="utf-8")
    run = await cli("datasets", "load", str(source), "--id", "shops", "--title", "Shops", "--json")
    assert run.code == 0, run.err
    loaded = run.json()
    assert loaded["dataset_id"] == "shops" and loaded["published"] and loaded["metadata"]["default"]["title"] == {"value": "Shops"}
    assert loaded["records_count"] == 3 and loaded["job"]["status"] == "done"

    source.write_text("id;name\n1;Alpha\n2;Beta\n3;Gamma\n4;Delta\n", encoding="utf-8")
    again = await cli("datasets", "load", str(source), "--id", "shops")
    assert again.code == 0, again.err
    assert "dataset shops exists" in again.err
    assert again.out.startswith(f"dataset shops ({loaded['dataset_uid']}): 4 records, version ")
    assert loaded["version"] not in again.out

    listed = await cli("datasets", "list", "--json")
    assert listed.code == 0 and {d["dataset_id"] for d in listed.json()} == {"shops", demo_dataset}
    table = (await cli("datasets", "list")).out.splitlines()
    assert table[0].split() == ["DATASET", "RECORDS", "TITLE"] and table[1].split()[:2] == [demo_dataset, "12,000"]

    exported = await cli("export", "shops", "--format", "csv", "-o", "shops-export.csv")
    assert exported.code == 0, exported.err
    assert [r["name"] for r in rows(tmp_path / "shops-export.csv")] == ["Alpha", "Beta", "Gamma", "Delta"]

    missing = await cli("datasets", "load", str(tmp_path / "nothing.csv"))
    assert missing.code == 2 and "nothing.csv: no such file" in missing.err


async def test_a_failed_publish_exits_1(cli, worker, tmp_path):
    source = tmp_path / "empty.csv"
    source.write_text("", encoding="utf-8")
    run = await cli("datasets", "load", str(source), "--id", "empty")
    assert run.code == 1 and run.out == ""
    last = run.err.splitlines()[-1]
    assert last.startswith("exportd: publishing empty.csv failed: ") and "has no record 1" in last


async def test_users_add_and_token(cli, demo_dataset):
    added = await cli("users", "add", "alice")
    assert added.code == 0, added.err
    token = added.out.strip()
    assert "user alice added; their API token:" in added.err
    mine = await cli("exports", "list", "--json", token=token)
    assert mine.code == 0 and mine.json() == []

    fresh = await cli("users", "token", "alice")
    assert fresh.code == 0 and fresh.out.strip() not in ("", token)
    assert (await cli("export", demo_dataset, "-f", "csv", token=fresh.out.strip())).code == 0
    assert len((await cli("exports", "list", "--json", token=token)).json()) == 1  # both tokens work

    admin = await cli("users", "add", "bob", "--admin", "--json")
    assert admin.code == 0 and admin.json()["admin"] is True and admin.json()["token"]
    assert (await cli("users", "list", "--json")).json() == [{"name": "alice", "admin": False}, {"name": "bob", "admin": True}]

    taken = await cli("users", "add", "alice")
    assert taken.code == 2 and taken.err.strip() == "exportd: 409 Conflict: user 'alice' exists"
    unknown = await cli("users", "token", "nobody")
    assert unknown.code == 2 and unknown.err.strip() == "exportd: 404 Not Found: no user 'nobody'"
    bad = await cli("users", "add", "no spaces")
    assert bad.code == 2 and bad.err.startswith("exportd: 400 Bad Request: user name 'no spaces' must be")
    forbidden = await cli("users", "add", "mallory", token=token)
    assert forbidden.code == 2 and forbidden.err.strip() == "exportd: 403 Forbidden: only an administrator may do this"


def basic(name: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()}


async def test_users_password_opens_http_basic_on_the_management_api(cli, url):
    assert (await cli("users", "add", "carol", "--admin")).code == 0
    management = url + "/api/management/v2/datasets/"
    async with aiohttp.ClientSession() as session:
        async with session.get(management, headers=basic("carol", "correct horse battery")) as before:
            assert before.status == 401
        run = await cli("users", "password", "carol", stdin=b"correct horse battery\n")
        assert run.code == 0 and run.out.strip() == "password set for carol", run.err
        async with session.get(management, headers=basic("carol", "correct horse battery")) as after:
            assert after.status == 200
        async with session.get(management, headers=basic("carol", "wrong horse")) as wrong:
            assert wrong.status == 401
    short = await cli("users", "password", "carol", stdin=b"x\n")
    assert short.code == 2 and "a password needs at least" in short.err
    assert (await cli("users", "password", "nobody", stdin=b"long enough password\n")).err.strip() == \
        "exportd: 404 Not Found: no user 'nobody'"


async def test_http_errors_are_clear_messages(cli, demo_dataset):
    wrong = await cli("exports", "list", token="not-a-token")
    assert wrong.code == 2 and wrong.err.strip() == "exportd: 401 Unauthorized: unknown API token"
    none = await cli("exports", "list", token=None)
    assert none.code == 2 and none.err.strip() == (
        "exportd: 401 Unauthorized: send your API token in the OSDI-API-Token header (set --token or EXPORTD_TOKEN)")
    unknown = await cli("export", "no-such-dataset", "--format", "csv")
    assert unknown.code == 2 and unknown.err.strip() == "exportd: 400 Bad Request: no dataset 'no-such-dataset'"
    fmt = await cli("export", demo_dataset, "--format", "docx")
    assert fmt.code == 2 and fmt.err.startswith("exportd: 400 Bad Request: ") and "docx" in fmt.err
    option = await cli("export", demo_dataset, "--format", "csv", "--option", "delimiter")
    assert option.code == 2 and "--option takes NAME=VALUE, not 'delimiter'" in option.err
    usage = await cli("export", demo_dataset)
    assert usage.code == 2 and "the following arguments are required: --format/-f" in usage.err
    refused = await cli("exports", "list", service=f"http://127.0.0.1:{free_port()}")
    assert refused.code == 2 and "Connection refused (is the service running? set --url or EXPORTD_URL)" in refused.err


def test_progress_lines_say_done_total_rate_and_time_left():
    stream = io.StringIO()
    now = [0.0]
    bar = Progress("exporting", "records", live=False, stream=stream, clock=lambda: now[0])
    bar.update(0, 12_000)
    now[0] = 2.0
    bar.update(4_000, 12_000)  # within PLAIN_EVERY of the first line: not shown
    now[0] = 6.0
    bar.update(6_000)
    bar.close()
    assert stream.getvalue().splitlines() == [
        "exporting: 0/12,000 records",
        "exporting: 6,000/12,000 records, 1,000 records/s, 0:06 left",
    ]
    live = io.StringIO()
    now[0] = 0.0
    bar = Progress("downloading", "bytes", live=True, stream=live, clock=lambda: now[0])
    bar.update(0, 2 << 20)
    now[0] = 1.0
    bar.update(1 << 20)
    bar.close()
    assert "\r\x1b[Kdownloading [" in live.getvalue() and "50% 1.0 MiB/2.0 MiB, 1.0 MiB/s, 0:01 left" in live.getvalue()
    assert live.getvalue().endswith("\n")


def test_a_live_bar_keeps_its_width_as_its_figures_grow(monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")  # too narrow for a full bar: it shrinks, once
    live = io.StringIO()
    now = [0.0]
    bar = Progress("downloading", "bytes", live=True, stream=live, clock=lambda: now[0])
    for step in range(1, 6):
        now[0] = float(step)
        bar.update(step * 300 << 20, 2 << 30)  # the sizes grow by a unit and a digit or two
    bars = [re.search(r"\[([#.]+)\]", line).group(1) for line in live.getvalue().split("\r\x1b[K") if line]
    assert len(bars) == 5 and len({len(b) for b in bars}) == 1 and 10 <= len(bars[0]) < 40
    assert [b.count("#") for b in bars] == sorted(b.count("#") for b in bars)


async def test_a_closed_pipe_ends_quietly(url, demo_dataset):
    """`exportd exports list | head -1`: the reader leaves, the command ends without a traceback."""
    env = {**os.environ, "EXPORTD_URL": url, "EXPORTD_TOKEN": ADMIN_TOKEN}
    for _ in range(100):  # a listing past a pipe's 64 KiB buffer: the CLI is still writing when head leaves
        await api(url, "POST", "/api/v1/exports", json={"export_type": "csv", "_links": {"osdi:resource": {
            "href": f"{url}/api/v2/catalog/datasets/{demo_dataset}/records?where=event_id<=5"}}})
    shell = await asyncio.create_subprocess_shell(
        f"{sys.executable} -m api.cli exports list --json --per-page 100 | head -c 10; echo \" ${{PIPESTATUS[0]}}\"",
        env=env, executable="/bin/bash", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await shell.communicate()
    assert err.decode() == "" and out.decode().rstrip().endswith(" 141"), (out, err)


async def test_loading_a_dataset_is_refused_before_the_upload(cli, url, tmp_path, user_token):
    big = tmp_path / "big.csv"
    big.write_text("a;b\n" + "1;2\n" * 10)
    refused = await cli("datasets", "load", str(big), "--progress", token=await user_token("erin"))
    assert refused.code == 2 and "403 Forbidden: loading datasets is for administrators" in refused.err
    assert "uploading" not in refused.err  # no bar: nothing was sent


async def test_me_shows_and_rotates_the_webhook_secret_and_export_takes_a_notify_url(cli, demo_dataset):
    shown = await cli("me")
    assert shown.code == 0, shown.err
    secret = next(line.split(": ", 1)[1] for line in shown.out.splitlines() if line.startswith("webhook_secret: "))
    assert "name: admin" in shown.out and secret.startswith("whsec_")
    rotated = await cli("me", "rotate-webhook-secret")
    assert rotated.code == 0 and rotated.out.strip() not in ("", secret)
    assert (await cli("me", "--json")).json()["webhook_secret"] == rotated.out.strip()
    created = await cli("export", demo_dataset, "-f", "csv", "--notify-url", "https://93.184.216.34/hook", "--json")
    assert created.code == 0, created.err
    assert created.json()["notify_url"] == "https://93.184.216.34/hook"
    shown = await cli("exports", "show", cli_exports.export_id(created.json()))
    assert "notify_url: https://93.184.216.34/hook" in shown.out
    refused = await cli("export", demo_dataset, "-f", "csv", "--notify-url", "http://169.254.169.254/")
    assert refused.code == 2 and "exportd: 400 Bad Request: the field 'notify_url' cannot be used" in refused.err


async def test_export_estimate_creates_nothing(cli, demo_dataset):
    estimated = await cli("export", demo_dataset, "-f", "csv", "--where", PARIS, "--estimate", "--json")
    assert estimated.code == 0, estimated.err
    assert estimated.json()["records_total"] > 0 and estimated.json()["estimated_bytes"] is None
    human = await cli("export", demo_dataset, "-f", "csv", "--estimate")
    assert human.code == 0 and human.out.startswith("records: ") and "unknown until" in human.out
    assert (await cli("exports", "list", "--json")).json() == []
    queued = await cli("export", demo_dataset, "-f", "csv", "--json")  # no worker: it waits, first in line
    shown = await cli("exports", "show", cli_exports.export_id(queued.json()))
    assert "queue_position: 1" in shown.out
