"""Signed downloads of ready exports, GET and HEAD: Content-Type, Content-Disposition,
Content-Length, validators and Range come with the file (api/fileresponse.py), or with the
bucket's presigned URL it redirects to, which ends no later than the export. A bad signature
answers 403; an expired link or export answers 410. An export that expires once downloaded
expires when the last of its bytes has been sent (domain/downloaded.py)."""
from __future__ import annotations

from aiohttp import web

from api.fileresponse import stored_file
from api.keys import EXPORTS, SETTINGS, STATE, STORAGE
from domain import exports as ex
from domain.downloaded import SentBytes
from domain.errors import Gone, NotFound
from domain.exports import Export, file_key
from domain.sharing import SharedFiles, drop_files
from domain.timeutil import now
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
    if not export.expire_once_downloaded:
        return await stored_file(request, file_key(export), file_name, media_type, export.expires_at, sha256=export.sha256)
    sent: list[list[int]] = []
    try:
        return await stored_file(request, file_key(export), file_name, media_type, export.expires_at, sha256=export.sha256, sent=sent)
    finally:  # a transfer cut short still counts what it sent: the client resumes from there
        await _count_sent(request, export, sent)


async def _count_sent(request: web.Request, export: Export, sent: list[list[int]]) -> None:
    """Expire the export, and drop its file, once every byte of it has been sent."""
    left = int((export.expires_at - now()).total_seconds()) + 60 if export.expires_at else 60
    if export.size is None or not await SentBytes(request.app[STATE]).add(export.id, export.size, sent, left):
        return
    exports = request.app[EXPORTS]
    try:
        if await exports.transition(export.id, ex.EXPIRED, expect=(ex.READY,),
                                    detail="expired once downloaded, as asked when it was created"):
            await drop_files(SharedFiles(request.app[STATE]), request.app[STORAGE], await exports.get(export.id))
    except NotFound:  # deleted meanwhile: its files went with it
        pass
