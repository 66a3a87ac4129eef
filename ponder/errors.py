"""Errors that carry their HTTP status; the API turns them into responses in one place."""

from __future__ import annotations

from typing import Any


class PonderError(Exception):
    status_code = 400
    headers: dict[str, str] | None = None

    def __init__(self, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class InvalidRequest(PonderError):
    status_code = 422


class PayloadTooLarge(PonderError):
    status_code = 413


class BatchOptionsInQuery(PonderError):
    """Batch options sent in the URL, where access logs keep them: a 400 saying where to send
    them instead."""

    status_code = 400


class UnsupportedMediaType(PonderError):
    status_code = 415


class Unauthorized(PonderError):
    status_code = 401


class Forbidden(PonderError):
    """Authenticated, but the key lacks the scope the route needs."""

    status_code = 403


class RateLimited(PonderError):
    status_code = 429

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message, retry_after_s=retry_after_s)
        self.headers = {"Retry-After": str(retry_after_s)}


class NotFound(PonderError):
    status_code = 404


class Conflict(PonderError):
    status_code = 409


class Gone(PonderError):
    """The resource is known but its content was removed (retention, deletion)."""

    status_code = 410


class LeaseLost(Exception):
    """This run no longer holds the job's lease; it must stop without writing."""
