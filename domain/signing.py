"""HMAC-signed, time-limited download links. The signature covers a namespace, the export id,
the file name and the expiry time, so a link cannot be moved to another export or file, nor
extended."""
from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime, timezone
from urllib.parse import quote

from domain.errors import Forbidden, Gone

NAMESPACE = b"exportd.download.v1"


def _signature(secret: str, export_id: str, file_name: str, expires: int) -> str:
    message = b"\x00".join([NAMESPACE, export_id.encode(), file_name.encode(), str(expires).encode()])
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def download_path(secret: str, export_id: str, file_name: str, expires_at: datetime) -> str:
    """The path and query of the signed link, valid until expires_at."""
    expires = int(expires_at.timestamp())
    signature = _signature(secret, export_id, file_name, expires)
    return f"/downloads/{export_id}/{quote(file_name)}?expires={expires}&signature={signature}"


def verify(secret: str, export_id: str, file_name: str, expires: str | None, signature: str | None, at: datetime | None = None) -> None:
    """Forbidden for a missing or wrong signature, Gone for a good one past its time."""
    if not expires or not signature or not (expires.isascii() and expires.isdigit()) or len(expires) > 20:
        raise Forbidden("this download link is not signed")
    expected = _signature(secret, export_id, file_name, int(expires))
    if not signature.isascii() or not hmac.compare_digest(expected, signature):
        raise Forbidden("this download link's signature is not valid")
    moment = at or datetime.now(timezone.utc)
    if int(expires) <= moment.timestamp():
        raise Gone("this download link has expired")
