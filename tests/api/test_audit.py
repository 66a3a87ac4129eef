"""The access audit (ponder/audit.py, api/scopes.py, api/routes/audit.py): every content read
and every write recorded with the key id; append-only in the database itself."""

from __future__ import annotations

import json

import psycopg
import pytest
import sqlalchemy as sa

from ponder.db import get_engine
from tests.conftest import TEST_DB, TenantKey
from tests.content import canary, end_with_content, submit


def _key_id(tenant: TenantKey) -> str:
    with get_engine().connect() as conn:
        return str(
            conn.execute(
                sa.text("select id from api_keys where tenant_id = :t"), {"t": tenant.tenant_id}
            ).scalar_one()
        )


def _events(tenant: TenantKey) -> list[tuple[str, str | None, str | None, str | None]]:
    with get_engine().connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                sa.text(
                    "select action, key_id, job_id, batch_id from audit_events "
                    "where tenant_id = :t order by created_at, action"
                ),
                {"t": tenant.tenant_id},
            )
        ]


def test_every_content_read_is_recorded_with_the_key_id(api, tenant, isolated_broker):
    job_id = submit(api, tenant.headers, canary())
    end_with_content(job_id, canary())
    line = {"custom_id": "a", "task": "medrec_extraction", "document": "x y", "strategy": "single"}
    batch = api.post(
        "/v1/batches",
        files={"file": ("items.jsonl", json.dumps(line).encode() + b"\n")},
        headers=tenant.headers,
    ).json()
    before = set(_events(tenant))
    reads = {
        f"/v1/jobs/{job_id}": ("job.read", job_id, None),
        f"/v1/jobs/{job_id}/trace": ("job.trace", job_id, None),
        f"/v1/jobs/{job_id}/deliveries": ("job.deliveries", job_id, None),
        "/v1/jobs": ("job.list", job_id, None),
        f"/v1/batches/{batch['id']}": ("batch.read", None, batch["id"]),
        f"/v1/batches/{batch['id']}/results?partial=true": ("batch.results", None, batch["id"]),
        f"/v1/batches/{batch['id']}/deliveries": ("batch.deliveries", None, batch["id"]),
        "/v1/batches": ("batch.list", None, batch["id"]),
    }
    key_id = _key_id(tenant)
    for url, (action, job, batch_id) in reads.items():
        assert api.get(url, headers=tenant.headers).status_code == 200, url
        assert (action, key_id, job, batch_id) in set(_events(tenant)) - before, url


def test_writes_are_recorded(api, tenant, isolated_broker):
    job_id = submit(api, tenant.headers, canary())
    api.post(f"/v1/jobs/{job_id}/legal-hold", headers=tenant.headers)
    api.delete(f"/v1/jobs/{job_id}/legal-hold", headers=tenant.headers)
    api.post(f"/v1/jobs/{job_id}/cancel", headers=tenant.headers)
    api.delete(f"/v1/jobs/{job_id}", headers=tenant.headers)
    created = api.post("/v1/keys", json={"scopes": ["read"]}, headers=tenant.headers).json()
    api.delete(f"/v1/keys/{created['id']}", headers=tenant.headers)
    actions = [e[0] for e in _events(tenant)]
    for action in ("job.submit", "job.hold", "job.release", "job.cancel", "job.delete"):
        assert action in actions
    with get_engine().connect() as conn:
        keys = conn.execute(
            sa.text(
                "select action from audit_events where tenant_id = :t and target_id = :k "
                "order by created_at"
            ),
            {"t": tenant.tenant_id, "k": created["id"]},
        ).scalars()
        assert list(keys) == ["key.create", "key.revoke"]


def test_the_address_of_the_caller_is_recorded(api, tenant, isolated_broker):
    job_id = submit(api, tenant.headers, canary())
    api.get(f"/v1/jobs/{job_id}", headers=tenant.headers)
    with get_engine().connect() as conn:
        address = conn.execute(
            sa.text("select address from audit_events where job_id = :j and action = 'job.read'"),
            {"j": job_id},
        ).scalar_one()
    assert address == "testclient"  # what Starlette's test client reports as its host


def test_a_refused_read_is_not_recorded(api, tenant, other_tenant, isolated_broker):
    job_id = submit(api, tenant.headers, canary())
    assert api.get(f"/v1/jobs/{job_id}", headers=other_tenant.headers).status_code == 404
    assert _events(other_tenant) == []


@pytest.mark.parametrize(
    "statement",
    ["update audit_events set action = 'x'", "delete from audit_events", "truncate audit_events"],
)
def test_the_application_role_cannot_change_or_remove_audit_rows(
    api, tenant, isolated_broker, statement
):
    submit(api, tenant.headers, canary())
    # The API's own connection settings: the role the application runs as.
    url = get_engine().url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege) as err:
        conn.execute(statement)
    assert "append-only" in str(err.value)
    assert TEST_DB in url and _events(tenant)  # still there


def test_the_audit_lists_only_this_tenants_events_in_keyset_pages(
    api, tenant, other_tenant, isolated_broker
):
    job_id = submit(api, tenant.headers, canary())
    for _ in range(3):
        api.get(f"/v1/jobs/{job_id}", headers=tenant.headers)
    submit(api, other_tenant.headers, canary())
    seen: list[dict] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.get("/v1/audit", params=params, headers=tenant.headers).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    ids = [e["id"] for e in seen]
    assert len(ids) == len(set(ids))
    assert [e["action"] for e in seen if e["action"] != "audit.read"] == ["job.read"] * 3 + [
        "job.submit"
    ]
    assert all(e["job_id"] in (job_id, None) for e in seen)


def test_a_bad_audit_cursor_is_422(api, tenant):
    response = api.get("/v1/audit", params={"cursor": "not-a-cursor"}, headers=tenant.headers)
    assert response.status_code == 422 and "cursor" in response.json()["error"]
