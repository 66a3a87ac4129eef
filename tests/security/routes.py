"""Every (method, path) the app serves, read from the app itself, so that a route added later
is in every test that walks them."""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.routing import Route

from tests.security.conftest import BATCH_LINE, HOOK, JOB, OPENAI_REQUEST

Endpoint = tuple[str, str]

PUBLIC: frozenset[Endpoint] = frozenset(
    {
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/openapi.json"),
        ("GET", "/docs"),
        ("GET", "/docs/oauth2-redirect"),
        ("GET", "/redoc"),
    }
)
"""The only routes that answer without an API key."""

VALID_REQUESTS: dict[Endpoint, dict[str, Any]] = {
    ("POST", "/v1/jobs"): {"json": JOB},
    ("POST", "/v1/batches"): {
        "content": json.dumps(BATCH_LINE).encode(),
        "headers": {"content-type": "application/jsonl"},
    },
    ("POST", "/v1/webhooks"): {"json": {"url": HOOK}},
    ("POST", "/openai/v1/files"): {
        "content": b'--b\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="r.jsonl"\r\n\r\n'
        + json.dumps(OPENAI_REQUEST).encode()
        + b"\r\n--b--\r\n",
        "headers": {"content-type": "multipart/form-data; boundary=b"},
    },
    ("POST", "/openai/v1/batches"): {
        "json": {"input_file_id": "file-x", "endpoint": "/v1/jobs", "completion_window": "24h"}
    },
}
"""Requests that the routes taking a body would accept, so that a refusal is the check's."""


def app_routes() -> list[Endpoint]:
    from api.main import app

    found: list[Endpoint] = []
    for route in app.routes:
        # The review workspace signs reviewers in with a session cookie, not an API key; its
        # sign-in, CSRF, expiry and tenant checks are tests/api/test_review_web.py's.
        if getattr(route, "path", "").startswith("/review"):
            continue
        assert isinstance(route, Route), f"{route!r}: not an HTTP route; teach tests/security it"
        methods = set(route.methods or ())
        if "GET" in methods:
            methods.discard("HEAD")  # Starlette answers HEAD on every GET route
        found += [(method, route.path) for method in sorted(methods)]
    return sorted(found)


ROUTES = app_routes()
AUTHENTICATED = [route for route in ROUTES if route not in PUBLIC]


def error_message(response: Any) -> str:
    """An error answer's message: ``{"error": message}``, or OpenAI's ``{"error": {"message":
    ...}}`` on the OpenAI-compatible surface (``/openai/v1``)."""
    error = response.json()["error"]
    return str(error["message"] if isinstance(error, dict) else error)


def route_id(route: Endpoint) -> str:
    return f"{route[0]} {route[1]}"


def path_params(path: str) -> list[str]:
    return re.findall(r"\{(\w+)\}", path)


def with_made_up_ids(path: str) -> str:
    return re.sub(r"\{\w+\}", "no-such-id", path)
