"""Webhook endpoints: registration with the SSRF check, the secret shown once, rotation,
disable and enable, deletion, tenancy; jobs that name an endpoint."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from ponder.db import get_engine, session_scope
from ponder.models import WebhookEndpoint, utcnow
from ponder.notify.endpoints import signing_secrets
from tests.conftest import queued_messages

HOOK = "http://127.0.0.1:9/hook"  # 127.0.0.1 is on the test allowlist
JOB = {"task": "medrec_extraction", "document": "Aspirin 81 mg daily.", "strategy": "single"}


def endpoint_row(endpoint_id: str) -> WebhookEndpoint:
    with session_scope() as session:
        row = session.get(WebhookEndpoint, endpoint_id)
        assert row is not None
        return row


def register(api, tenant, **body) -> dict:
    response = api.post("/v1/webhooks", json={"url": HOOK, **body}, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return response.json()


def test_registration_returns_the_secret_once(api, tenant):
    created = register(api, tenant, description="ops")
    assert created["secret"].startswith("whsec_") and created["description"] == "ops"
    assert not created["include_content"]
    listed = api.get("/v1/webhooks", headers=tenant.headers).json()
    assert [e["id"] for e in listed] == [created["id"]] and listed[0]["secret"] is None
    fetched = api.get(f"/v1/webhooks/{created['id']}", headers=tenant.headers).json()
    assert fetched["secret"] is None


def test_registration_refuses_unsafe_urls_and_writes_nothing(api, tenant):
    for url in ("http://10.0.0.5/hook", "http://169.254.169.254/latest", "file:///etc/passwd"):
        response = api.post("/v1/webhooks", json={"url": url}, headers=tenant.headers)
        assert response.status_code == 422 and "url refused" in response.json()["error"]
    with get_engine().connect() as conn:
        assert conn.execute(sa.text("select count(*) from webhook_endpoints")).scalar_one() == 0


def test_rotation_signs_with_both_secrets_until_the_grace_period_ends(api, tenant):
    created = register(api, tenant)
    rotated = api.post(
        f"/v1/webhooks/{created['id']}/rotate?grace_period_s=3600", headers=tenant.headers
    ).json()
    assert rotated["secret"] != created["secret"] and rotated["previous_secret_expires_at"]
    row = endpoint_row(created["id"])
    assert signing_secrets(row) == [rotated["secret"], created["secret"]]
    assert signing_secrets(row, now=utcnow() + timedelta(hours=2)) == [rotated["secret"]]


def test_rotation_without_grace_drops_the_old_secret_at_once(api, tenant):
    created = register(api, tenant)
    rotated = api.post(
        f"/v1/webhooks/{created['id']}/rotate?grace_period_s=0", headers=tenant.headers
    ).json()
    assert signing_secrets(endpoint_row(created["id"])) == [rotated["secret"]]


def test_a_job_can_name_an_endpoint(api, tenant, isolated_broker):
    created = register(api, tenant)
    body = {**JOB, "webhook_endpoint_id": created["id"]}
    assert api.post("/v1/jobs", json=body, headers=tenant.headers).status_code == 201


def test_a_disabled_endpoint_is_refused_for_new_jobs_until_enabled(api, tenant, isolated_broker):
    created = register(api, tenant)
    with get_engine().begin() as conn:
        conn.execute(
            sa.text("update webhook_endpoints set disabled_at = now(), disabled_reason = '410'")
        )
    body = {**JOB, "webhook_endpoint_id": created["id"]}
    refused = api.post("/v1/jobs", json=body, headers=tenant.headers)
    assert refused.status_code == 422 and "is disabled" in refused.json()["error"]
    assert queued_messages(isolated_broker) == 0
    enabled = api.post(f"/v1/webhooks/{created['id']}/enable", headers=tenant.headers).json()
    assert enabled["disabled_at"] is None
    assert api.post("/v1/jobs", json=body, headers=tenant.headers).status_code == 201


def test_a_deleted_endpoint_is_gone(api, tenant, isolated_broker):
    created = register(api, tenant)
    deleted = api.delete(f"/v1/webhooks/{created['id']}", headers=tenant.headers)
    assert deleted.status_code == 204
    assert api.get(f"/v1/webhooks/{created['id']}", headers=tenant.headers).status_code == 404
    assert api.get("/v1/webhooks", headers=tenant.headers).json() == []
    body = {**JOB, "webhook_endpoint_id": created["id"]}
    assert api.post("/v1/jobs", json=body, headers=tenant.headers).status_code == 422


def test_another_tenants_endpoint_is_404_and_cannot_be_named(
    api, tenant, other_tenant, isolated_broker
):
    created = register(api, tenant)
    for method, path in (
        ("get", f"/v1/webhooks/{created['id']}"),
        ("post", f"/v1/webhooks/{created['id']}/rotate"),
        ("post", f"/v1/webhooks/{created['id']}/enable"),
        ("delete", f"/v1/webhooks/{created['id']}"),
    ):
        assert getattr(api, method)(path, headers=other_tenant.headers).status_code == 404, path
    body = {**JOB, "webhook_endpoint_id": created["id"]}
    response = api.post("/v1/jobs", json=body, headers=other_tenant.headers)
    assert response.status_code == 422 and "not one of your endpoints" in response.json()["error"]
