"""Signed downloads of ready exports, GET and HEAD: Content-Type, Content-Disposition,
Content-Length, validators and Range come with the file (api/fileresponse.py), or with the
bucket's presigned URL it redirects to, which ends no later than the export. A bad signature
answers 403; an expired link or export answers 410."""
from __future__ import annotations

from aiohttp import web

from api.fileresponse import stored_file
from api.keys import EXPORTS, SETTINGS
from domain import exports as ex
from domain.errors import Gone, NotFound
from domain.exports import file_key
from domain.signing import verify
from formats import REGISTRY


async def download(request: web.Request) -> web.StreamResponse:
    export_id = request.match_info["export_id"]
    file_name = request.match_info["file_name"]
    verify(request.app[SETTINGS].secret_key, export_id, file_name,
           request.query.get("expires"), request.query.get("signature"))
    try:
        export = await request.app[EXPORTS].get(export_id)
    except NotFound:
        raise Gone("this export no longer exists") from None
    if export.status == ex.EXPIRED:
        raise Gone("this export has expired")
    if export.status != ex.READY or export.file_name != file_name:
        raise NotFound("this export has no such file")
    fmt = REGISTRY.get(export.export_type)
    # the options as the writer read them: a raw "false" is no reason to say gzip
    media_type = fmt.content_type(fmt.parse_options(export.options))
    return await stored_file(request, file_key(export), file_name, media_type, export.expires_at, sha256=export.sha256)
