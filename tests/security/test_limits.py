"""The request rate and size limits hold on every authenticated route, not only the ones
their own tests use: 429 with Retry-After, 413 for a body over the limit, declared or not."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from ponder.db import get_engine
from tests.conftest import TenantKey, queued_messages
from tests.security.routes import (
    AUTHENTICATED,
    VALID_REQUESTS,
    error_message,
    route_id,
    with_made_up_ids,
)

LIMIT = 2000


def rows_written() -> int:
    with get_engine().connect() as conn:
        return sum(
            int(conn.execute(sa.text(f"select count(*) from {table}")).scalar_one())
            for table in ("jobs", "batches", "webhook_endpoints", "openai_files", "openai_batches")
        )


@pytest.mark.parametrize("route", AUTHENTICATED, ids=route_id)
def test_over_its_rate_a_tenant_gets_429_with_retry_after_on_every_route(
    api, tenant: TenantKey, isolated_broker, limits, route
):
    limits(tenant_rate_per_s=0.01, tenant_burst=1)
    assert api.get("/v1/jobs", headers=tenant.headers).status_code == 200  # the one token
    method, path = route
    request = VALID_REQUESTS.get(route, {})
    headers = {**tenant.headers, **request.get("headers", {})}
    kwargs = {k: v for k, v in request.items() if k != "headers"}
    response = api.request(method, with_made_up_ids(path), headers=headers, **kwargs)
    assert response.status_code == 429, response.text
    assert 1 <= int(response.headers["Retry-After"]) <= 100
    assert "too many requests" in error_message(response)
    assert rows_written() == 0 and queued_messages(isolated_broker) == 0


@pytest.mark.parametrize("declared", [True, False], ids=["declared", "streamed"])
@pytest.mark.parametrize("route", AUTHENTICATED, ids=route_id)
def test_a_body_over_the_limit_is_413_on_every_route(
    api, tenant: TenantKey, isolated_broker, limits, route, declared
):
    limits(max_request_bytes=LIMIT, max_batch_bytes=LIMIT)
    method, path = route
    request = VALID_REQUESTS.get(route, {"headers": {"content-type": "application/json"}})
    body = b"x" * (LIMIT + 1000)
    # A generator goes out chunked, without Content-Length: the limit must hold while reading.
    content = body if declared else iter([body[:LIMIT], body[LIMIT:]])
    headers = {**tenant.headers, **request.get("headers", {})}
    response = api.request(method, with_made_up_ids(path), content=content, headers=headers)
    assert response.status_code == 413, response.text
    assert "limit" in error_message(response)
    assert rows_written() == 0 and queued_messages(isolated_broker) == 0
