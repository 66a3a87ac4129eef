"""The one shape of an error answer: ``{"error": message, "detail": {...}}``."""

from __future__ import annotations

from fastapi.responses import JSONResponse

from ponder.errors import PonderError


def error_response(exc: PonderError) -> JSONResponse:
    return JSONResponse(
        {"error": exc.message, "detail": exc.detail},
        status_code=exc.status_code,
        headers=exc.headers,
    )
