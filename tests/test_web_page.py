"""The web page at `/`, in Debian's headless chromium driven by Playwright (no browser
download), against the real app on a real port and a real worker: a user signs in, opens the
demo dataset, exports a filtered CSV, watches it become ready and downloads it; an
administrator approves an export that waited for approval. A screenshot goes to tests/out/.

Beside it, over plain HTTP: the page's assets and caching, GET /api/v1/me, the token in a
cookie with its cross-site (CSRF) guard, and the ?status= filter the approval queue reads."""
from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path
from typing import AsyncIterator

import pytest
from aiohttp import web
from playwright.async_api import Browser, Page, async_playwright, expect

from api.app import create_app
from api.auth import COOKIE
from domain import demo
from tests.conftest import ADMIN_TOKEN
from tests.osdi import create, export_body, export_id, headers

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
OUT = Path(__file__).parent / "out"
APPROVAL_ROWS = 1000
READY_WITHIN = 60_000  # ms Playwright waits for an export to become ready


@pytest.fixture
def settings(make_settings):
    """Exports of more than APPROVAL_ROWS records wait for an administrator."""
    return make_settings(approval_rows=APPROVAL_ROWS)


@pytest.fixture
async def base_url(settings) -> AsyncIterator[str]:
    """The real application on a real port, as a browser reaches it."""
    runner = web.AppRunner(create_app(settings))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}"
    await runner.cleanup()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists() and not os.environ.get("CI"):
        pytest.skip("Debian's chromium is not installed (/usr/bin/chromium); `make test` installs it")
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


@pytest.fixture
def script_errors() -> list[str]:
    """Errors thrown by the page's script; each browser test ends by asserting there were none."""
    return []


async def open_page(browser: Browser, base_url: str, token: str, errors: list[str]) -> Page:
    """A fresh browser profile on the page, signed in with the token."""
    context = await browser.new_context(accept_downloads=True, viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(base_url + "/")
    await page.get_by_label("API token").fill(token)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#whoami")).to_be_visible()
    return page


async def open_demo_dataset(page: Page) -> None:
    await page.get_by_role("link", name=re.compile(demo.TITLE)).click()
    await expect(page.locator("#dataset-title")).to_have_text(demo.TITLE)
    await expect(page.locator("#fields tbody tr")).to_have_count(len(demo.FIELDS))
    await expect(page.locator("#preview tbody tr")).to_have_count(10)


def export_row(page: Page, name: str):
    return page.locator("#exports tbody tr", has_text=name)


def screenshot_path(name: str) -> Path:
    OUT.mkdir(exist_ok=True)
    return OUT / name


async def test_a_user_exports_a_filtered_csv_watches_it_and_downloads_it(browser, base_url, worker, demo_dataset, user_token,
                                                                        script_errors):
    page = await open_page(browser, base_url, await user_token("alice"), script_errors)
    await expect(page.locator("#user-name")).to_have_text("alice")
    await expect(page.locator("#exports-title")).to_have_text("My exports")
    await expect(page.locator("#approvals-section")).to_be_hidden()

    await open_demo_dataset(page)
    await expect(page.locator("#fields")).to_contain_text("geo_point_2d")
    await expect(page.locator("#preview thead")).to_contain_text("Expected attendance")

    await page.get_by_label("Format", exact=True).select_option("csv")
    await expect(page.locator("#options-list")).to_contain_text("with bom")  # the format's own options, from x-formats
    await page.get_by_label("delimiter", exact=True).select_option(",")
    await page.get_by_label("with bom", exact=True).uncheck()
    await page.get_by_label("Filter (ODSQL where)").fill("event_id <= 300 AND city != 'nowhere'")
    await expect(page.locator("#preview-count")).to_contain_text("300 records match this filter")
    await page.get_by_label("Name (optional)").fill("first events <b>")
    await page.get_by_role("button", name="Export", exact=True).click()

    row = export_row(page, "first events <b>")  # the API's text shown as text, never as HTML
    await expect(row.locator(".status")).to_have_text("ready", timeout=READY_WITHIN)
    await expect(row.locator("progress")).to_have_attribute("value", "300")
    await expect(row.locator(".progress")).to_contain_text("300 / 300")
    await expect(row.locator("td.num").first).to_have_text("300")
    await expect(row.locator("td.num").nth(1)).to_have_text(re.compile(r"^\d+(\.\d)? kB$"))
    await expect(row.locator("time")).to_have_text(re.compile(r"^in \d+ min \d\d s$"))  # TTL 1 h, counting down

    async with page.expect_download() as download_info:
        await row.get_by_role("link", name="Download first events <b>").click()
    download = await download_info.value
    assert download.suggested_filename.endswith(".csv")
    with open(await download.path(), newline="", encoding="utf-8") as handle:
        text = handle.read()
    assert not text.startswith("\ufeff")  # with_bom unchecked
    records = list(csv.DictReader(io.StringIO(text, newline="")))
    assert [int(r["event_id"]) for r in records] == list(range(1, 301))
    assert records[0].keys() >= {"title", "city", "geo_point_2d"}

    shot = screenshot_path("web-page-user.png")
    await page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")
    await page.context.close()
    assert not script_errors


async def test_an_administrator_approves_an_export_that_waited(browser, base_url, worker, demo_dataset, user_token, script_errors):
    user = await open_page(browser, base_url, await user_token("bob"), script_errors)
    await open_demo_dataset(user)
    await user.get_by_label("Format", exact=True).select_option("jsonl")
    await user.get_by_label("Name (optional)").fill("every event")
    await user.get_by_role("button", name="Export", exact=True).click()
    await expect(user.locator("#notice")).to_contain_text("waits for an administrator")
    await expect(export_row(user, "every event").locator(".status")).to_have_text("pending approval")

    admin = await open_page(browser, base_url, ADMIN_TOKEN, script_errors)
    await expect(admin.locator("#user-role")).to_be_visible()
    await expect(admin.locator("#exports-title")).to_have_text("Exports (all users)")
    waiting = admin.locator("#approvals li", has_text="every event")
    await expect(waiting).to_contain_text(f"more than {APPROVAL_ROWS} records")
    await waiting.get_by_text("Detail", exact=True).click()
    await expect(waiting.locator("dl")).to_contain_text("none: every record")
    await expect(waiting.locator("dl")).to_contain_text(demo.DATASET_ID)
    await expect(waiting.locator("dl")).to_contain_text("Asked bybob")  # whose export it is
    await expect(export_row(admin, "every event")).to_contain_text("by bob")
    shot = screenshot_path("web-page.png")
    await admin.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")
    await waiting.get_by_role("button", name="Reject every event").click()  # a rejection needs a reason
    await expect(admin.locator("#notice")).to_contain_text("Give a reason")
    await waiting.get_by_label("Note").fill("fine by me")
    await waiting.get_by_role("button", name="Approve every event").click()
    await expect(admin.locator("#notice")).to_contain_text("approved")
    await expect(admin.locator("#approvals-empty")).to_be_visible()

    row = export_row(admin, "every event")
    await expect(row.locator(".status")).to_have_text("ready", timeout=READY_WITHIN)
    await expect(row.locator(".progress")).to_contain_text(f"{demo.ROWS:,} / {demo.ROWS:,}")

    await user.get_by_role("button", name="Refresh").click()
    await expect(export_row(user, "every event").locator(".status")).to_have_text("ready")
    await expect(export_row(user, "every event").get_by_role("link", name="Download every event")).to_be_visible()
    for page in (user, admin):
        await page.context.close()
    assert not script_errors


# --- over plain HTTP ---------------------------------------------------------------------------


async def test_the_page_and_its_assets_are_served_with_sensible_caching(client):
    response = await client.get("/")
    html = await response.text()
    assert response.status == 200 and response.content_type == "text/html"
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-cache" and response.headers["ETag"]
    again = await client.get("/", headers={"If-None-Match": response.headers["ETag"]})
    assert again.status == 304

    script = re.search(r'src="(/static/app\.js\?v=\w+)"', html).group(1)
    versioned = await client.get(script)
    assert versioned.status == 200 and versioned.content_type == "text/javascript"
    assert "immutable" in versioned.headers["Cache-Control"]
    plain = await client.get("/static/style.css")
    assert plain.status == 200 and plain.content_type == "text/css" and plain.headers["Cache-Control"] == "no-cache"
    for missing in ("/static/nothing.js", "/static/..%2F__init__.py", "/static/index.html"):
        response = await client.get(missing)
        assert response.status == 404 and (await response.json())["error_code"] == "not_found", missing


async def test_me_says_who_the_token_belongs_to(client, user_token):
    token = await user_token("carol")
    response = await client.get("/api/v1/me", headers=headers(token))
    assert (response.status, await response.json()) == (200, {"name": "carol", "admin": False})
    response = await client.get("/api/v1/me", headers=headers(ADMIN_TOKEN))
    assert (await response.json())["admin"] is True
    response = await client.get("/api/v1/me")
    assert response.status == 401 and (await response.json())["error_code"] == "unauthorized"


async def test_a_cookie_token_works_but_not_cross_site(client, demo_dataset, user_token):
    cookie = {"Cookie": f"{COOKIE}={await user_token('dave')}"}
    same_site = f"http://{client.server.host}:{client.server.port}"
    body = export_body("csv", query={"select": ["event_id"]})

    assert (await client.get("/api/v1/me", headers=cookie)).status == 200
    for origin in (None, "http://evil.example", same_site.replace("http:", "https:")):
        sent = {**cookie, **({"Origin": origin} if origin else {})}
        response = await client.post("/api/v1/exports", json=body, headers=sent)
        error = await response.json()
        assert (response.status, error["error_code"]) == (403, "cross_site_request"), origin
    response = await client.post("/api/v1/exports", json=body, headers={**cookie, "Origin": same_site})
    assert response.status == 201
    created = export_id(await response.json())
    response = await client.delete(f"/api/v1/exports/{created}", headers=cookie)
    assert response.status == 403  # DELETE is state-changing too
    response = await client.delete(f"/api/v1/exports/{created}", headers={**cookie, "Origin": same_site})
    assert response.status == 200


async def test_the_collection_filters_by_status(client, demo_dataset, user_token):
    erin, frank = await user_token("erin"), await user_token("frank")
    small = {"_links": {"osdi:resource": {"href": "http://x/api/v2/catalog/datasets/demo-events/records?where=event_id<=5"}}}
    waiting = [export_id(await create(client, erin)) for _ in range(2)]  # 12,000 records: pending approval
    await create(client, erin, **small)  # queued (no worker here)
    await create(client, frank)

    response = await client.get("/api/v1/exports?status=pending_approval&per_page=1", headers=headers(ADMIN_TOKEN))
    page = await response.json()
    assert response.status == 200 and page["total_records"] == 3 and page["total_pages"] == 3
    assert "status=pending_approval" in page["_links"]["next"]["href"]
    response = await client.get("/api/v1/exports?status=pending_approval", headers=headers(erin))
    page = await response.json()
    assert [e["status"] for e in page["_embedded"]["osdi:exports"]] == ["pending_approval"] * 2
    assert [export_id(e) for e in page["_embedded"]["osdi:exports"]] == waiting[::-1]  # newest first
    response = await client.get("/api/v1/exports?status=queued", headers=headers(erin))
    assert (await response.json())["total_records"] == 1
    response = await client.get("/api/v1/exports?status=ready", headers=headers(erin))
    assert (await response.json())["_embedded"]["osdi:exports"] == []

    # approving, rejecting or deleting takes an export out of the queue (the status index moves with it)
    response = await client.post(f"/api/v1/exports/{waiting[0]}/approve", json={}, headers=headers(ADMIN_TOKEN))
    assert response.status == 200
    response = await client.delete(f"/api/v1/exports/{waiting[1]}", headers=headers(erin))
    assert response.status == 200
    response = await client.get("/api/v1/exports?status=pending_approval", headers=headers(ADMIN_TOKEN))
    assert (await response.json())["total_records"] == 1  # frank's
    response = await client.get("/api/v1/exports?status=queued", headers=headers(erin))
    assert [export_id(e) for e in (await response.json())["_embedded"]["osdi:exports"]][0] == waiting[0]

    response = await client.get("/api/v1/exports?status=done", headers=headers(erin))
    error = await response.json()
    assert response.status == 400 and "pending_approval" in error["message"]


async def test_the_format_menu_offers_geopackage_and_file_geodatabase(browser, base_url, demo_dataset, user_token,
                                                                      script_errors):
    """The menu is the registry's formats that fit the dataset, through x-formats: new ones appear by themselves."""
    page = await open_page(browser, base_url, await user_token("alice"), script_errors)
    await open_demo_dataset(page)
    menu = page.get_by_label("Format", exact=True)
    values = await menu.locator("option").evaluate_all("options => options.map(o => o.value)")
    assert {"gpkg", "fgdb", "shp", "fgb"} <= set(values)
    await menu.select_option("gpkg")
    await expect(page.locator("#options-list")).to_contain_text("epsg")
