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


class UnsupportedMediaType(PonderError):
    status_code = 415


class Unauthorized(PonderError):
    status_code = 401


class RateLimited(PonderError):
    status_code = 429

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message, retry_after_s=retry_after_s)
        self.headers = {"Retry-After": str(retry_after_s)}


class NotFound(PonderError):
    status_code = 404


class Conflict(PonderError):
    status_code = 409


class LeaseLost(Exception):
    """This run no longer holds the job's lease; it must stop without writing."""
