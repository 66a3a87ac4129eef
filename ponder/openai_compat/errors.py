"""Errors of the OpenAI-compatible surface: they carry OpenAI's ``param`` and ``code`` (and, for
a refused request file, ``errors`` listing each bad line); the API renders them in OpenAI's
``{"error": {"message", "type", "param", "code"}}`` shape."""

from __future__ import annotations

from typing import Any

from ponder.errors import PonderError


class InvalidOpenAIRequest(PonderError):
    """A 400, as OpenAI answers a request it refuses."""

    status_code = 400

    def __init__(
        self, message: str, *, param: str | None = None, code: str | None = None, **detail: Any
    ) -> None:
        super().__init__(message, param=param, code=code, **detail)
