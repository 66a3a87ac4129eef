"""API key scopes, expiry, revocation and last use (ponder/tenants.py, api/scopes.py,
api/routes/keys.py), and who may read ``/metrics`` (api/routes/metrics.py)."""

from __future__ import annotations

import time

import sqlalchemy as sa
from starlette.routing import Route

from api.scopes import POLICY
from ponder import config
from ponder.db import get_engine, session_scope
from ponder.tenants import issue_key
from tests.conftest import TenantKey
from tests.security.conftest import JOB


def _key(tenant: TenantKey, *scopes: str) -> dict[str, str]:
    with session_scope() as session:
        issued = issue_key(session=session, tenant_name="tenant-a", scopes=scopes)
        return {"Authorization": f"Bearer {issued.key}"}


def _jobs() -> int:
    with get_engine().connect() as conn:
        return int(conn.execute(sa.text("select count(*) from jobs")).scalar_one())


def test_every_v1_route_has_an_explicit_scope():
    from api.main import app

    routes = {
        (method, r.path)
        for r in app.routes
        if isinstance(r, Route) and r.path.startswith("/v1")
        for method in (r.methods or ()) - {"HEAD"}
    }
    assert routes - set(POLICY) == set()  # a route missing here would need admin


def test_a_key_without_the_submit_scope_cannot_submit(api, tenant, isolated_broker):
    response = api.post("/v1/jobs", json=JOB, headers=_key(tenant, "read"))
    assert response.status_code == 403
    assert "'submit' scope" in response.json()["error"]
    assert _jobs() == 0


def test_a_key_without_the_read_scope_cannot_read_content(api, tenant, isolated_broker):
    job_id = api.post("/v1/jobs", json=JOB, headers=tenant.headers).json()["id"]
    for url in ("/v1/jobs", f"/v1/jobs/{job_id}", f"/v1/jobs/{job_id}/trace"):
        response = api.get(url, headers=_key(tenant, "submit"))
        assert response.status_code == 403 and "'read' scope" in response.json()["error"]


def test_a_key_without_the_admin_scope_cannot_use_admin_routes(api, tenant, isolated_broker):
    job_id = api.post("/v1/jobs", json=JOB, headers=tenant.headers).json()["id"]
    headers = _key(tenant, "submit", "read")
    for method, url in (
        ("GET", "/v1/keys"),
        ("GET", "/v1/audit"),
        ("DELETE", f"/v1/jobs/{job_id}"),
        ("POST", f"/v1/jobs/{job_id}/legal-hold"),
    ):
        response = api.request(method, url, headers=headers)
        assert response.status_code == 403 and "'admin' scope" in response.json()["error"], url


def test_an_expired_key_is_401(api, tenant):
    with get_engine().begin() as conn:
        conn.execute(
            sa.text("update api_keys set expires_at = now() - interval '1 s' where tenant_id = :t"),
            {"t": tenant.tenant_id},
        )
    response = api.get("/v1/jobs", headers=tenant.headers)
    assert response.status_code == 401 and "expired" in response.json()["error"]


def test_a_key_that_expires_while_cached_is_401(api, tenant):
    one_second = 1 / 86_400
    created = api.post(
        "/v1/keys", json={"scopes": ["read"], "expires_in_days": one_second}, headers=tenant.headers
    ).json()
    headers = {"Authorization": f"Bearer {created['key']}"}
    assert api.get("/v1/jobs", headers=headers).status_code == 200  # cached from here on
    time.sleep(1.2)
    assert api.get("/v1/jobs", headers=headers).status_code == 401


def test_a_key_revoked_through_the_api_is_refused_at_once(api, tenant):
    created = api.post("/v1/keys", json={"scopes": ["read"]}, headers=tenant.headers).json()
    headers = {"Authorization": f"Bearer {created['key']}"}
    assert api.get("/v1/jobs", headers=headers).status_code == 200  # cached from here on
    assert api.delete(f"/v1/keys/{created['id']}", headers=tenant.headers).status_code == 200
    response = api.get("/v1/jobs", headers=headers)
    assert response.status_code == 401 and "invalid API key" in response.json()["error"]


def test_keys_are_created_listed_and_revoked_through_the_api(api, tenant):
    created = api.post(
        "/v1/keys",
        json={"scopes": ["submit", "read"], "expires_in_days": 30},
        headers=tenant.headers,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["key"].startswith("pk_") and body["scopes"] == ["submit", "read"]
    assert body["expires_at"] is not None
    listed = api.get("/v1/keys", headers=tenant.headers).json()
    assert {k["id"] for k in listed} >= {body["id"]}
    assert all("key" not in k and "key_hash" not in k for k in listed)
    twice = [api.delete(f"/v1/keys/{body['id']}", headers=tenant.headers) for _ in range(2)]
    assert twice[0].status_code == twice[1].status_code == 200
    assert twice[0].json()["revoked_at"] == twice[1].json()["revoked_at"] is not None


def test_an_unknown_scope_is_refused(api, tenant):
    response = api.post("/v1/keys", json={"scopes": ["root"]}, headers=tenant.headers)
    assert response.status_code == 422 and "scopes" in response.json()["error"]


def test_another_tenants_key_cannot_be_revoked(api, tenant, other_tenant):
    with get_engine().connect() as conn:
        key_id = conn.execute(
            sa.text("select id from api_keys where tenant_id = :t"), {"t": tenant.tenant_id}
        ).scalar_one()
    response = api.delete(f"/v1/keys/{key_id}", headers=other_tenant.headers)
    assert response.status_code == 404
    assert api.get("/v1/jobs", headers=tenant.headers).status_code == 200


def test_existing_keys_keep_all_three_scopes(tenant):
    with get_engine().connect() as conn:
        scopes = conn.execute(
            sa.text("select scopes from api_keys where tenant_id = :t"), {"t": tenant.tenant_id}
        ).scalar_one()
    assert scopes == ["submit", "read", "admin"]


def test_last_use_is_recorded(api, tenant):
    api.get("/v1/jobs", headers=tenant.headers)
    with get_engine().connect() as conn:
        used = conn.execute(
            sa.text("select last_used_at from api_keys where tenant_id = :t"),
            {"t": tenant.tenant_id},
        ).scalar_one()
    assert used is not None


def test_metrics_needs_a_scrape_token_or_an_admin_key(api, tenant, monkeypatch):
    monkeypatch.setenv("PONDER_METRICS__SCRAPE_TOKEN", "scrape-secret")
    monkeypatch.setenv("PONDER_METRICS__PUBLIC", "false")
    config.get_settings.cache_clear()
    try:
        assert api.get("/metrics").status_code == 401
        bearer = {"Authorization": "Bearer scrape-secret"}
        assert api.get("/metrics", headers=bearer).status_code == 200
        assert api.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert api.get("/metrics", headers=_key(tenant, "read")).status_code == 403
        assert api.get("/metrics", headers=tenant.headers).status_code == 200
    finally:
        config.get_settings.cache_clear()
