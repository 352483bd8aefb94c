"""Signed links: any change to the export, the file, the expiry or the signature answers 403;
a link past its time answers 410."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlparse

import pytest

from domain import keys
from domain.errors import Forbidden, Gone
from domain.signing import download_path, verify
from tests.conftest import ADMIN_TOKEN
from tests.osdi import create, download, export_id, poll

pytestmark = pytest.mark.backends("local", "s3-stream")  # the checks come before the file is sent, whatever the storage


def tamper(link: str, **changes: str) -> str:
    parsed = urlparse(link)
    params = {k: v[0] for k, v in parse_qs(parsed.query).items()}
    path = changes.pop("path", parsed.path)
    params.update(changes)
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"{parsed.scheme}://{parsed.netloc}{path}?{query}"


async def test_tampered_links_are_403(client, worker, demo_dataset):
    ready = await poll(client, ADMIN_TOKEN, export_id(await create(client, ADMIN_TOKEN, "csv")))
    other = await poll(client, ADMIN_TOKEN, export_id(await create(client, ADMIN_TOKEN, "csv")))
    link = ready["download_link"]
    assert (await download(client, link))[0] == 200
    params = parse_qs(urlparse(link).query)
    signature, expires = params["signature"][0], params["expires"][0]
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    bad_links = [
        tamper(link, signature=flipped),
        tamper(link, expires=str(int(expires) + 3600)),  # extending the link breaks it
        tamper(link, path=urlparse(link).path.replace(export_id(ready), export_id(other))),
        tamper(link, path=urlparse(link).path.replace("demo-events.csv", "other.csv")),
        link.split("?")[0],
        tamper(link, expires="soon"),
    ]
    for bad in bad_links:
        status, body, response_headers = await download(client, bad)
        assert status == 403, bad
        assert response_headers["Content-Type"].startswith("application/json")


def test_signature_covers_export_file_and_expiry():
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    path = download_path("s3cret", "e1", "data.csv", later)
    q = parse_qs(urlparse(path).query)
    verify("s3cret", "e1", "data.csv", q["expires"][0], q["signature"][0])
    for args in (("other", "e1", "data.csv"), ("s3cret", "e2", "data.csv"), ("s3cret", "e1", "data.json")):
        with pytest.raises(Forbidden):
            verify(*args, q["expires"][0], q["signature"][0])
    with pytest.raises(Gone):
        verify("s3cret", "e1", "data.csv", q["expires"][0], q["signature"][0], at=later + timedelta(seconds=1))


async def test_the_content_type_is_that_of_the_options_parsed(client, worker, demo_dataset, state):
    """An export stored with its options' raw spelling (a JSON body accepted "false" for a
    boolean before they had to be booleans) is served as the file it is, not as gzip."""
    ready = await poll(client, ADMIN_TOKEN, export_id(await create(client, ADMIN_TOKEN, "csv")))
    await state.hset(keys.export(export_id(ready)), "options", '{"compressed": "false"}')
    status, body, response_headers = await download(client, ready["download_link"])
    assert status == 200 and response_headers["Content-Type"].startswith("text/csv")
    assert body.startswith(b"\xef\xbb\xbf") or body[:1].isalpha()  # CSV text, not a gzip stream
