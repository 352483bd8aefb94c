"""Downloading a ready export through its signed link, resumably. Bytes go to
FILE.<export id>.part and the file is renamed into place only when whole, so FILE is never half
a file. The part file is named for its export, so only bytes of that same export are ever
continued: a part left by an interrupted run is continued with `Range: bytes=N-` (the server
must answer 206 from byte N; a 200 means it sent everything, which is written from the
start); an existing FILE is replaced, never appended to."""
from __future__ import annotations

import http.client
import os
import re
import socket
import urllib.request
from pathlib import Path

from api.cli.client import CHUNK, Client
from api.cli.errors import CliError
from api.cli.output import Output

CONTENT_RANGE = re.compile(r"bytes (\d+)-\d+/(\d+|\*)")


def part_of(target: Path, export_id: str) -> Path:
    return target.with_name(f"{target.name}.{export_id}.part")


def _resume_from(part: Path, size: int) -> int:
    """How many bytes of this export are already here; 0 when the part cannot be its start."""
    have = part.stat().st_size if part.exists() else 0
    return have if have <= size else 0


def download(client: Client, export_id: str, link: str, target: Path, size: int, out: Output) -> None:
    """Download `link` (export `export_id`, `size` bytes) into `target`."""
    part = part_of(target, export_id)
    offset = _resume_from(part, size)
    if offset < size:
        _fetch(client, link, part, offset, size, out)
    os.replace(part, target)


def _fetch(client: Client, link: str, part: Path, offset: int, size: int, out: Output) -> None:
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    if offset:
        out.note(f"continuing {part.name} from byte {offset:,}")
    with client.open(urllib.request.Request(link, headers=headers)) as response:
        if offset and response.status == 206:
            match = CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != offset:
                raise CliError(f"the server answered a different range ({response.headers.get('Content-Range')!r}) "
                               f"than bytes={offset}-; remove {part} and try again")
        elif offset:
            out.note("the server sent the whole file: starting again")
            offset = 0
        bar = out.progress("downloading", "bytes")
        done = offset
        try:
            with part.open("r+b" if offset else "wb") as file:
                file.seek(offset)
                file.truncate()
                bar.update(done, size)
                while chunk := response.read(CHUNK):
                    file.write(chunk)
                    done += len(chunk)
                    bar.update(done, size)
        except (ConnectionError, TimeoutError, socket.timeout, http.client.IncompleteRead) as exc:
            raise CliError(f"the download stopped at {done:,} of {size:,} bytes ({exc}); "
                           f"run the same command again to continue from {part}") from None
        finally:
            bar.close()
    if done != size:
        raise CliError(f"the download ended at {done:,} of {size:,} bytes; run the same command again to continue from {part}")
