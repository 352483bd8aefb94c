"""An access log that never writes query strings (download signatures, `apikey=`) nor
headers (tokens): method, path, status, size and time only."""
from __future__ import annotations

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse


class AccessLogger(AbstractAccessLogger):
    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        self.logger.info('%s "%s %s" %s %s %.3fs', request.remote, request.method, request.path,
                         response.status, response.body_length, time,
                         extra={"remote": request.remote, "method": request.method, "path": request.path,
                                "status": response.status, "bytes": response.body_length, "duration": round(time, 4)})
