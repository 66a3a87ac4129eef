"""Rendering for the workspace: its own Jinja2 environment (autoescape on, unlike the prompts'
one), the security headers every page carries, and the route class that turns a missing
sign-in into a redirect and a refused request into an HTML error page."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ponder.errors import PonderError
from ponder.prompts import TEMPLATES_DIR

REVIEW_TEMPLATES: Path = TEMPLATES_DIR / "review"

HEADERS = {
    # Pages hold documents (PHI): never cached, never framed, no inline script.
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
}


class SignInRequired(Exception):
    """No valid session (none, expired, tampered, reviewer disabled): answered with a 303 to
    the sign-in page, before anything is read or written."""

    def __init__(self, next_path: str = "/review") -> None:
        super().__init__("sign-in required")
        self.next_path = next_path


class CsrfRefused(PonderError):
    """A POST whose CSRF token is missing or wrong: 403, nothing written."""

    status_code = 403


def _when(value: object) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M UTC")
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M UTC")
        except ValueError:
            return value
    return "" if value is None else str(value)


def _pretty(value: object) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


@functools.lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(REVIEW_TEMPLATES),
        undefined=StrictUndefined,
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["pretty"] = _pretty
    return env


def render(
    template: str, *, status_code: int = 200, request: Request, **context: Any
) -> HTMLResponse:
    context.setdefault("reviewer_email", None)
    context.setdefault("csrf", "")
    html = environment().get_template(template).render(request_path=request.url.path, **context)
    return HTMLResponse(html, status_code=status_code, headers=HEADERS)


def sign_in_url(next_path: str) -> str:
    return "/review/sign-in?next=" + quote(next_path, safe="/")


def safe_next(value: object) -> str:
    """Where to go after signing in: a workspace path only, never another site."""
    text = str(value or "")
    if text.startswith("/review") and not text.startswith("//") and "\\" not in text:
        return text
    return "/review"


class PageRoute(APIRoute):
    """Errors of a workspace route as pages: a missing session redirects to sign-in (303), a
    refused request (a PonderError: 403, 404, 409, 422...) renders the error page with its
    status. The request's transaction has already rolled back when this runs."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await original(request)
            except SignInRequired as exc:
                return RedirectResponse(sign_in_url(exc.next_path), status_code=303)
            except PonderError as exc:
                return render(
                    "error.html",
                    request=request,
                    status_code=exc.status_code,
                    status=exc.status_code,
                    message=exc.message,
                )

        return handler
