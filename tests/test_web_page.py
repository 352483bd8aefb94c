"""The web page at `/`, in Debian's headless chromium driven by Playwright (no browser
download), against the real app on a real port and a real worker: a user signs in, opens the
demo dataset, exports a filtered CSV, watches it become ready and downloads it; an
administrator approves an export that waited for approval; a visitor does the same without
signing in; the exports table pages and filters; the map and the chart follow the filter; and
the page fits windows from 360 to 1920 px. Every browser test fails on a console error or a
thrown script error; screenshots go to tests/out/ (gitignored), their paths printed.

Beside it, over plain HTTP: the page's assets and caching, GET /api/v1/me, the token in a
cookie with its cross-site (CSRF) guard, and the ?status= filter the approval queue reads."""
from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path
from typing import AsyncIterator

import pyarrow.compute as pc
import pytest
from aiohttp import ClientSession, web
from playwright.async_api import Browser, Page, async_playwright, expect

from api.app import create_app
from api.auth import COOKIE
from domain import demo
from tests.conftest import ADMIN_TOKEN, load_dataset
from tests.osdi import create, export_body, export_id, headers

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
OUT = Path(__file__).parent / "out"  # screenshots, kept after the run (gitignored)
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


async def open_page(browser: Browser, base_url: str, token: str | None, errors: list[str], width: int = 1400) -> Page:
    """A fresh browser profile on the page, signed in with the token (None: a visitor who does not sign in)."""
    context = await browser.new_context(accept_downloads=True, viewport={"width": width, "height": 1000})
    page = await context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    await page.goto(base_url + "/")
    if token is None:
        await expect(page.locator("#exports-title")).to_have_text("Your exports (this browser)")
        return page
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


async def overflow(page: Page) -> dict:
    """How far the document and its top bar and notice reach, against the viewport's width."""
    return await page.evaluate("""() => ({
        scroll: document.scrollingElement.scrollWidth, viewport: innerWidth,
        topbar: document.querySelector('.topbar').getBoundingClientRect().width,
        notice: document.getElementById('notice').getBoundingClientRect().right,
    })""")


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
    await expect(row.locator("time[data-expires]")).to_have_text(re.compile(r"^in \d+ min \d\d s$"))  # TTL 1 h, counting down
    await expect(row.locator(".filter")).to_have_text("event_id <= 300 AND city != 'nowhere'")
    await expect(row.locator(".options")).to_have_text("delimiter=, · with_bom=false")

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


# Records the page's desktop notifications, and lets the test say whether the tab is hidden.
WATCHED = """
window.__notified = [];
window.__hidden = false;
const Native = window.Notification;
window.Notification = class extends Native {
  constructor(title, options) { super(title, options); window.__notified.push([title, options && options.body]); }
};
Object.defineProperty(document, 'visibilityState', { get: () => (window.__hidden ? 'hidden' : 'visible') });
"""


async def test_the_page_tells_of_a_watched_export_that_becomes_ready(browser, base_url, worker, demo_dataset, user_token,
                                                                   script_errors):
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    await context.grant_permissions(["notifications"], origin=base_url)
    await context.add_init_script(WATCHED)
    page = await context.new_page()
    page.on("pageerror", lambda error: script_errors.append(str(error)))
    await page.goto(base_url + "/")
    await page.get_by_label("API token").fill(await user_token("erin"))
    await page.get_by_role("button", name="Sign in").click()
    await open_demo_dataset(page)
    title = await page.title()
    await page.evaluate("window.__hidden = true")  # the user went to another tab
    await page.get_by_label("Filter (ODSQL where)").fill("event_id <= 50")
    await page.get_by_label("Name (optional)").fill("told when ready")
    await page.get_by_role("button", name="Export", exact=True).click()
    await expect(export_row(page, "told when ready").locator(".status")).to_have_text("ready", timeout=READY_WITHIN)
    await expect(page).to_have_title(f"(1) ready — {title}")
    assert await page.evaluate("window.__notified") == [["Export ready", "“told when ready” is ready to download."]]
    await page.evaluate("window.__hidden = false; document.dispatchEvent(new Event('visibilitychange'))")
    await expect(page).to_have_title(title)
    await context.close()
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
    await expect(export_row(admin, "every event").locator(".owner")).to_have_text("bob")
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

    # the owner's page follows the export while it waits (?wait=): it turns ready there without a Refresh
    await expect(export_row(user, "every event").locator(".status")).to_have_text("ready", timeout=READY_WITHIN)
    await expect(export_row(user, "every event").get_by_role("link", name="Download every event")).to_be_visible()
    for page in (user, admin):
        await page.context.close()
    assert not script_errors


@pytest.mark.parametrize("width", [360, 1280, 1920])
async def test_the_page_fits_the_window_from_a_phone_to_a_wide_screen(browser, base_url, demo_dataset, user_token,
                                                                      script_errors, width):
    page = await open_page(browser, base_url, await user_token("gina"), script_errors, width=width)
    await open_demo_dataset(page)
    await expect(page.locator("#map circle").first).to_be_attached()  # the pictures drawn to their box's width
    await expect(page.locator("#chart .bar").first).to_be_attached()
    await page.get_by_role("button", name="Export", exact=True).click()  # a notice across the top
    await expect(page.locator("#notice")).to_be_visible()
    sizes = await overflow(page)
    assert sizes["scroll"] <= sizes["viewport"] == width, sizes
    assert sizes["topbar"] == width and sizes["notice"] <= width, sizes
    # the wide tables scroll inside their own box rather than widening the page
    preview = await page.locator("#preview").evaluate("t => [t.parentElement.scrollWidth, t.parentElement.clientWidth]")
    assert width >= 1280 or preview[0] > preview[1], preview
    shot = screenshot_path(f"web-page-{width}.png")
    await page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")
    await page.context.close()
    assert not script_errors


async def post_exports(base_url: str, token: str, dataset_id: str, count: int, where: str = "", **extra) -> None:
    """`count` exports of the dataset through the API, as another client would make them."""
    href = f"{base_url}/api/v2/catalog/datasets/{dataset_id}/records" + (f"?where={where}" if where else "")
    async with ClientSession() as session:
        for _ in range(count):
            body = {"export_type": "csv", "_links": {"osdi:resource": {"href": href}}, **extra}
            async with session.post(f"{base_url}/api/v1/exports", json=body, headers=headers(token)) as response:
                assert response.status == 201, await response.text()


async def test_exports_show_what_they_hold_page_by_page_and_filter(browser, base_url, settings, demo_file, demo_dataset,
                                                                   user_token, script_errors):
    await load_dataset(settings, demo_file, "other-events", "Other events")
    hana, ivan = await user_token("hana"), await user_token("ivan")
    await post_exports(base_url, hana, demo.DATASET_ID, 1)  # every record: waits for approval
    await post_exports(base_url, hana, demo.DATASET_ID, 21, where="event_id <= 5", export_type="jsonl")
    await post_exports(base_url, ivan, "other-events", 1, where="event_id <= 9 AND city = 'Lyon'", options={"delimiter": ","})

    admin = await open_page(browser, base_url, ADMIN_TOKEN, script_errors, width=1280)
    rows = admin.locator("#exports tbody tr")
    await expect(admin.locator("#exports-page")).to_have_text("Page 1 of 2")
    await expect(rows).to_have_count(20)
    await expect(admin.locator("#exports-prev")).to_be_disabled()
    newest = rows.first  # ivan's, the newest
    await expect(newest.locator(".owner")).to_have_text("ivan")
    await expect(newest.locator("code.dataset")).to_have_text("other-events")
    await expect(newest.locator(".filter")).to_have_text("event_id <= 9 AND city = 'Lyon'")
    await expect(newest.locator(".options")).to_have_text("delimiter=,")
    await expect(newest.locator("time").first).to_have_text(re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d UTC$"))
    await expect(rows.nth(1)).to_contain_text("jsonl")
    await expect(rows.nth(1).locator(".options")).to_have_text("defaults")
    shot = screenshot_path("web-page-exports.png")
    await admin.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")
    await admin.locator("#exports-next").click()
    await expect(admin.locator("#exports-page")).to_have_text("Page 2 of 2")
    await expect(rows).to_have_count(3)
    await expect(rows.last.locator(".filter")).to_have_text("every record")  # the oldest: hana's first
    await expect(admin.locator("#exports-next")).to_be_disabled()

    await admin.get_by_label("Dataset", exact=True).select_option("other-events")
    await expect(admin.locator("#exports-page")).to_have_text("Page 1 of 1")
    await expect(rows).to_have_count(1)
    await expect(rows.first.locator(".owner")).to_have_text("ivan")
    await admin.get_by_label("Dataset", exact=True).select_option("")
    await admin.get_by_label("Status", exact=True).select_option("pending_approval")
    await expect(rows).to_have_count(1)
    await expect(rows.first.locator(".owner")).to_have_text("hana")
    await admin.get_by_label("Dataset", exact=True).select_option("other-events")
    await expect(admin.locator("#exports-empty")).to_have_text("No export matches these filters.")
    await expect(rows).to_have_count(0)
    for width in (1280, 360):  # thirteen columns scroll inside their box, at a phone's width too
        await admin.set_viewport_size({"width": width, "height": 1000})
        sizes = await overflow(admin)
        assert sizes["scroll"] <= sizes["viewport"] == width, sizes

    user = await open_page(browser, base_url, hana, script_errors, width=1280)
    await expect(user.locator("#exports-page")).to_have_text("Page 1 of 2")
    await expect(user.locator("#exports th.owner-col")).to_be_hidden()  # a user sees only her own
    await expect(user.locator("#exports tbody .owner")).to_have_count(0)
    await user.get_by_label("Dataset", exact=True).select_option("other-events")
    await expect(user.locator("#exports-empty")).to_be_visible()
    for page in (admin, user):
        await page.context.close()
    assert not script_errors


async def bars(page: Page) -> dict[str, int]:
    """The chart's bars: label → count, as drawn."""
    return dict(await page.locator("#chart .bar").evaluate_all(
        "bars => bars.map(b => [b.dataset.label, Number(b.dataset.count)])"))


@pytest.mark.parametrize("width", [360, 1280])
async def test_a_map_and_a_chart_follow_the_filter(browser, base_url, demo_dataset, user_token, script_errors, width):
    events = demo.table()
    located = pc.invert(pc.is_null(events["geo_point_2d"]))
    lyon = events.filter(pc.equal(events["city"], "Lyon"))
    page = await open_page(browser, base_url, await user_token("jade"), script_errors, width=width)
    await open_demo_dataset(page)

    # the map: the first 500 records, those with a location drawn at it
    circles = page.locator("#map circle")
    await expect(circles).to_have_count(pc.sum(located[:500]).as_py())
    await expect(page.locator("#map-caption")).to_contain_text(f"the first 500 of {demo.ROWS:,} matching records")
    # the chart: records by month of their date, first; then by category
    await expect(page.locator("#chart .bar")).to_have_count(24)
    assert sum((await bars(page)).values()) == demo.ROWS
    await page.get_by_label("Field of the chart").select_option(label="Category")
    await expect(page.locator("#chart-caption")).to_contain_text("Category: every value")
    expected = {row["values"]: row["counts"] for row in pc.value_counts(events["category"]).to_pylist()}
    assert await bars(page) == expected

    await page.get_by_label("Filter (ODSQL where)").fill("city = 'Lyon'")
    await expect(page.locator("#preview-count")).to_contain_text(f"{len(lyon):,} records match this filter")
    await expect(circles).to_have_count(pc.sum(pc.invert(pc.is_null(lyon["geo_point_2d"]))[:500]).as_py())
    longitudes = await circles.evaluate_all("marks => marks.map(m => Number(m.dataset.lon))")
    assert all(abs(lon - 4.8357) < 0.2 for lon in longitudes)  # every mark at Lyon now
    expected = {row["values"]: row["counts"] for row in pc.value_counts(lyon["category"]).to_pylist()}
    await expect(page.locator("#chart-caption")).to_contain_text(f"{len(lyon):,} records")
    assert await bars(page) == expected

    # numbers: the most frequent values past 1,000 distinct ones; an exact histogram below
    await page.get_by_label("Field of the chart").select_option(label="Price (EUR)")
    await expect(page.locator("#chart-caption")).to_contain_text("the 15 most frequent")
    drawn = await bars(page)
    assert drawn["0"] == pc.sum(lyon["free_entry"]).as_py()  # free entry costs 0
    await page.get_by_label("Filter (ODSQL where)").fill("event_id <= 300")
    await page.get_by_label("Field of the chart").select_option(label="Expected attendance")
    await expect(page.locator("#chart-caption")).to_contain_text("a histogram of 20 bins, 300 records")
    await expect(page.locator("#chart .bar")).to_have_count(20)
    assert sum((await bars(page)).values()) == 300
    await expect(circles).to_have_count(pc.sum(located[:300]).as_py())
    sizes = await overflow(page)
    assert sizes["scroll"] <= sizes["viewport"] == width, sizes
    svg_right = await page.locator("#map svg, #chart svg").evaluate_all("svgs => svgs.map(s => s.getBoundingClientRect().right)")
    assert len(svg_right) == 2 and max(svg_right) <= width, svg_right  # drawn to the width of their box

    shot = screenshot_path(f"web-page-pictures-{width}.png")
    await page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")
    await page.context.close()
    assert not script_errors


@pytest.mark.parametrize("width", [360, 1280])
async def test_a_visitor_exports_watches_and_downloads_without_signing_in(browser, base_url, worker, demo_dataset,
                                                                          script_errors, width):
    page = await open_page(browser, base_url, None, script_errors, width=width)
    await expect(page.locator("#signin")).to_be_visible()
    await open_demo_dataset(page)
    await expect(page.locator("#export-signin")).to_contain_text("kept in this browser")
    await expect(page.locator("#exports-filters")).to_be_hidden()  # the API keeps no list of a visitor's exports
    await page.get_by_label("Format", exact=True).select_option("csv")
    await page.get_by_label("Filter (ODSQL where)").fill("event_id <= 300")
    await expect(page.locator("#preview-count")).to_contain_text("300 records match this filter")
    await expect(page.locator("#map circle")).to_have_count(pc.sum(pc.invert(pc.is_null(demo.table()["geo_point_2d"]))[:300]).as_py())
    await page.get_by_label("Name (optional)").fill("a visitor's events")
    await page.get_by_role("button", name="Export", exact=True).click()

    row = export_row(page, "a visitor's events")
    await expect(row.locator(".status")).to_have_text("ready", timeout=READY_WITHIN)
    await expect(row.locator(".progress")).to_contain_text("300 / 300")
    await expect(row.locator(".filter")).to_have_text("event_id <= 300")
    await expect(row.locator(".owner")).to_have_count(0)
    async with page.expect_download() as download_info:
        await row.get_by_role("link", name="Download a visitor's events").click()
    with open(await (await download_info.value).path(), newline="", encoding="utf-8-sig") as handle:
        records = list(csv.DictReader(handle, delimiter=";"))
    assert [int(r["event_id"]) for r in records] == list(range(1, 301))
    sizes = await overflow(page)
    assert sizes["scroll"] <= sizes["viewport"] == width, sizes
    shot = screenshot_path(f"web-page-visitor-{width}.png")
    await page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")

    await page.reload()  # this browser remembers the export: its URL is the only key to it
    await expect(row.locator(".status")).to_have_text("ready")
    await row.get_by_role("button", name="Delete a visitor's events").click()
    await expect(page.locator("#notice")).to_contain_text("deleted")
    await page.reload()
    await expect(page.locator("#exports-empty")).to_have_text("No export yet from this browser.")
    assert await page.evaluate("localStorage.getItem('exportd_visitor_exports')") == "[]"
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
    body = await response.json()
    assert response.status == 200 and {k: body[k] for k in ("name", "admin")} == {"name": "carol", "admin": False}
    assert body["webhook_secret"].startswith("whsec_")
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

    # by dataset, alone or with the owner and the status; a deleted export leaves its dataset's index
    response = await client.get("/api/v1/exports?dataset=demo-events", headers=headers(erin))
    page = await response.json()
    assert page["total_records"] == 2 and {e["dataset_id"] for e in page["_embedded"]["osdi:exports"]} == {"demo-events"}
    response = await client.get("/api/v1/exports?dataset=demo-events&status=queued&per_page=1", headers=headers(erin))
    page = await response.json()
    assert page["total_records"] == 2 and "dataset=demo-events" in page["_links"]["next"]["href"]
    response = await client.get("/api/v1/exports?dataset=demo-events", headers=headers(ADMIN_TOKEN))
    assert (await response.json())["total_records"] == 3
    response = await client.get("/api/v1/exports?dataset=other-dataset", headers=headers(ADMIN_TOKEN))
    assert (await response.json())["total_records"] == 0

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
