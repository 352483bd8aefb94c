"""The command line's HTTP client: stdlib urllib, synchronous, JSON in and out, one token
header on every API request. Every failure becomes an exception whose message a person can
act on: HttpError (the service answered with an error) or Unreachable (no answer at all).

The CLI imports nothing of the service (aiohttp, Redis, pyarrow), so it starts at once; the
two protocol constants it shares with the service are checked against it by tests/test_cli.py."""
from __future__ import annotations

import json
import mimetypes
import os
import secrets
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator
from urllib.parse import urlencode

from api.cli.errors import CliError, HttpError, Unreachable

TOKEN_HEADER = "OSDI-API-Token"  # what api/auth.py reads
TIMEOUT = 30.0  # seconds without a byte before a request gives up
CHUNK = 256 * 1024


def _http_error(exc: urllib.error.HTTPError) -> HttpError:
    raw = exc.read()
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return HttpError(exc.code, body["message"], str(body.get("error_code", "")))
    text = raw.decode("utf-8", "replace").strip()[:200] or exc.reason
    return HttpError(exc.code, str(text))


class Client:
    def __init__(self, url: str, token: str | None, timeout: float = TIMEOUT):
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def open(self, request: urllib.request.Request, timeout: float | None = None) -> Any:
        """The open response (a context manager to read from), or HttpError / Unreachable."""
        try:
            return urllib.request.urlopen(request, timeout=timeout or self.timeout)
        except urllib.error.HTTPError as exc:
            with exc:
                raise _http_error(exc) from None
        except urllib.error.URLError as exc:
            why = exc.reason.strerror if isinstance(exc.reason, OSError) and exc.reason.strerror else exc.reason
            raise Unreachable(f"cannot reach {request.full_url.split('?')[0]}: {why} "
                              f"(is the service running? set --url or EXPORTD_URL)") from None
        except (TimeoutError, socket.timeout):
            raise Unreachable(f"{request.full_url.split('?')[0]} did not answer within {timeout or self.timeout:.0f} s") from None

    def request(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None,
                data: Any = None, headers: dict[str, str] | None = None, timeout: float | None = None) -> Any:
        """Call the API at `path` (relative to the service's URL) and return its JSON answer."""
        url = self.url + path + (f"?{urlencode(query)}" if query else "")
        all_headers = {"Accept": "application/json", **(headers or {})}
        if self.token:
            all_headers[TOKEN_HEADER] = self.token
        if body is not None:
            data = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, method=method, headers=all_headers)
        with self.open(request, timeout) as response:
            try:
                return self._read_json(response)
            except (TimeoutError, socket.timeout, ConnectionError) as exc:
                raise Unreachable(f"{url.split('?')[0]}: the answer was cut off ({exc})") from None

    @staticmethod
    def _read_json(response: Any) -> Any:
        raw = response.read()
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            raise CliError(f"{response.url.split('?')[0]} answered {response.status} with something that is not JSON") from None

    def upload(self, path: str, file: Path, field: str = "file", on_bytes: Callable[[int], None] | None = None) -> Any:
        """POST the file as multipart/form-data, streamed from disk (never read whole)."""
        boundary = secrets.token_hex(16)
        content_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        name = file.name.replace('"', "%22").replace("\r", "").replace("\n", "")
        head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{name}\"\r\n"
                f"Content-Type: {content_type}\r\n\r\n").encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        size = os.path.getsize(file)
        with file.open("rb") as stream:
            return self.request("POST", path, data=_parts(head, stream, tail, on_bytes),
                                headers={"Content-Type": f"multipart/form-data; boundary={boundary}",
                                         "Content-Length": str(len(head) + size + len(tail))})


def _parts(head: bytes, stream: BinaryIO, tail: bytes, on_bytes: Callable[[int], None] | None) -> Iterator[bytes]:
    yield head
    sent = 0
    while chunk := stream.read(CHUNK):
        sent += len(chunk)
        if on_bytes:
            on_bytes(sent)
        yield chunk
    yield tail
