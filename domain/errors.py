"""Domain errors. Each carries the error_code and HTTP status the API answers with, so the
error middleware maps them without knowing each one."""
from __future__ import annotations


class DomainError(Exception):
    status = 400
    error_code = "bad_request"

    def __init__(self, message: str, error_code: str | None = None, **extra: object) -> None:
        super().__init__(message)
        self.message = message
        if error_code:
            self.error_code = error_code
        self.extra = extra


class Invalid(DomainError):
    status = 400
    error_code = "invalid_request"


class Unauthorized(DomainError):
    status = 401
    error_code = "unauthorized"


class Forbidden(DomainError):
    status = 403
    error_code = "forbidden"


class NotFound(DomainError):
    status = 404
    error_code = "not_found"


class Conflict(DomainError):
    status = 409
    error_code = "conflict"


class Gone(DomainError):
    status = 410
    error_code = "gone"


class InsufficientStorage(DomainError):
    status = 507
    error_code = "insufficient_storage"


class Unavailable(DomainError):
    status = 503
    error_code = "unavailable"


class TooManyRequests(DomainError):
    status = 429
    error_code = "too_many_requests"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after)}
