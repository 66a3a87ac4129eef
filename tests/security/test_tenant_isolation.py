"""Authentication and tenant isolation on every route of the app. The routes are read from the
app, so a route added later is covered, or fails here until the test knows how to exercise
it: a path parameter it has no resource for, or a route without an id in no scenario."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from ponder.db import get_engine
from tests.conftest import TenantKey, queued_messages
from tests.security.conftest import BATCH_LINE, HOOK, JOB, create_resources
from tests.security.routes import (
    AUTHENTICATED,
    PUBLIC,
    ROUTES,
    error_message,
    path_params,
    route_id,
    with_made_up_ids,
)

LISTS = {
    ("GET", "/v1/jobs"),
    ("GET", "/v1/batches"),
    ("GET", "/v1/webhooks"),
    ("GET", "/v1/keys"),
    ("GET", "/v1/audit"),
    ("GET", "/v1/reviews"),
    ("GET", "/v1/reviews/stats"),
    ("GET", "/openai/v1/files"),
    ("GET", "/openai/v1/batches"),
    # Totals over all tenants for an admin key or the scrape token: no id or tenant in them.
    ("GET", "/metrics"),
}
"""Routes without an id that list the caller's resources."""

CREATES: dict[tuple[str, str], tuple[Callable[[dict[str, str]], dict[str, Any]], int]] = {
    ("POST", "/v1/jobs"): (
        lambda ids: {"json": {**JOB, "webhook_endpoint_id": ids["endpoint_id"]}},
        422,
    ),
    ("POST", "/v1/batches"): (
        lambda ids: {  # options go in form fields, never the query string
            "files": {"file": ("items.jsonl", json.dumps(BATCH_LINE).encode(), "text/plain")},
            "data": {"webhook_endpoint_id": ids["endpoint_id"]},
        },
        422,
    ),
    # Name nothing of anyone's: they must simply leave the other tenant's rows alone.
    ("POST", "/v1/webhooks"): (lambda ids: {"json": {"url": HOOK}}, 201),
    ("POST", "/v1/keys"): (lambda ids: {"json": {"scopes": ["read"]}}, 201),
    ("POST", "/openai/v1/files"): (
        lambda ids: {"files": {"file": ("r.jsonl", b"{}\n")}, "data": {"purpose": "batch"}},
        200,
    ),
    ("POST", "/openai/v1/batches"): (
        lambda ids: {
            "json": {
                "input_file_id": ids["file_id"],
                "endpoint": "/v1/jobs",
                "completion_window": "24h",
            }
        },
        404,
    ),
}
"""Routes without an id that create: the request names the other tenant's resource where the
body can name one, and the expected status."""

BAD_CREDENTIALS = {
    "no-header": (lambda key: {}, "missing API key"),
    "unknown-key": (lambda key: {"Authorization": "Bearer pk_not_a_real_key"}, "invalid API key"),
    "wrong-scheme": (lambda key: {"Authorization": f"Basic {key}"}, "malformed"),
    "no-key": (lambda key: {"Authorization": "Bearer "}, "malformed"),
    "key-alone": (lambda key: {"Authorization": key}, "malformed"),
}


def owned_rows(tenant_id: str) -> dict[str, list[Any]]:
    """Every row the tenant owns, all columns, to compare before and after."""
    with get_engine().connect() as conn:
        rows = {
            table: list(
                conn.execute(
                    sa.text(f"select * from {table} where tenant_id = :t order by id"),
                    {"t": tenant_id},
                )
            )
            for table in (
                "jobs",
                "batches",
                "webhook_endpoints",
                "notifications",
                "openai_files",
                "openai_batches",
            )
        }
        rows["delivery_attempts"] = list(
            conn.execute(
                sa.text(
                    "select a.* from delivery_attempts a join notifications n "
                    "on n.id = a.notification_id where n.tenant_id = :t order by a.id"
                ),
                {"t": tenant_id},
            )
        )
    return rows


def test_the_public_set_names_only_routes_that_exist():
    assert PUBLIC <= set(ROUTES)
    assert LISTS <= set(ROUTES) and set(CREATES) <= set(ROUTES)


@pytest.mark.parametrize("route", ROUTES, ids=route_id)
def test_every_route_but_the_public_ones_needs_a_valid_key(api, tenant: TenantKey, route):
    method, path = route
    url = with_made_up_ids(path)
    if route in PUBLIC:
        assert api.request(method, url).status_code == 200
        return
    for name, (headers, phrase) in BAD_CREDENTIALS.items():
        response = api.request(method, url, headers=headers(tenant.key))
        assert response.status_code == 401, (name, response.text)
        assert phrase in error_message(response), name


def test_a_revoked_key_is_refused(api, tenant: TenantKey):
    with get_engine().begin() as conn:
        conn.execute(
            sa.text("update api_keys set revoked_at = now() where tenant_id = :t"),
            {"t": tenant.tenant_id},
        )
    response = api.get("/v1/jobs", headers=tenant.headers)
    assert response.status_code == 401 and "invalid API key" in response.json()["error"]


@pytest.mark.parametrize("route", AUTHENTICATED, ids=route_id)
def test_another_tenants_resources_are_out_of_reach(
    api, tenant: TenantKey, other_tenant: TenantKey, isolated_broker, route
):
    method, path = route
    owned = create_resources(api, tenant)
    before, queued = owned_rows(tenant.tenant_id), queued_messages(isolated_broker)
    names = path_params(path)
    if names:
        unknown = set(names) - set(owned)
        assert not unknown, f"{route_id(route)}: no resource for {unknown}; add one to owned"
        response = api.request(method, path.format(**owned), headers=other_tenant.headers)
        assert response.status_code == 404, response.text
        assert error_message(response).startswith("no ")
    elif route in LISTS:
        response = api.request(method, path, headers=other_tenant.headers)
        assert response.status_code == 200, response.text
        assert not [i for i in owned.values() if i in response.text]
    elif route in CREATES:
        request, status = CREATES[route]
        kwargs = request(owned)
        headers = {**other_tenant.headers, **kwargs.pop("headers", {})}
        response = api.request(method, path, headers=headers, **kwargs)
        assert response.status_code == status, response.text
    else:
        pytest.fail(f"{route_id(route)}: no tenant-isolation scenario; add one to this test")
    assert owned_rows(tenant.tenant_id) == before
    assert queued_messages(isolated_broker) == queued
