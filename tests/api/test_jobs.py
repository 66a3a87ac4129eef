"""The jobs API without a worker: submission, idempotency, tenancy, listing, cancel."""

from __future__ import annotations

import sqlalchemy as sa

from ponder.db import get_engine
from tests.conftest import queued_messages

DOC = "Metoprolol 50 mg twice daily. Stop aspirin."
BODY = {"task": "medrec_extraction", "document": DOC, "n": 2}


def count(table: str) -> int:
    with get_engine().connect() as conn:
        return int(conn.execute(sa.text(f"select count(*) from {table}")).scalar_one())


def test_submit_freezes_the_configuration_on_the_job(api, tenant, isolated_broker):
    response = api.post("/v1/jobs", json=BODY, headers=tenant.headers)
    assert response.status_code == 201
    job = response.json()
    assert job["status"] == "queued"
    config = job["config"]
    assert config["strategy"]["name"] == "best_of_n" and config["strategy"]["n"] == 2
    assert config["verifiers"][0] == "schema" and "name_grounding" in config["verifiers"]
    assert len(config["template_version"]) == 12
    assert config["template"].startswith("prompts/medrec_extraction/")


def test_same_idempotency_key_returns_the_same_job_and_queues_once(api, tenant, isolated_broker):
    headers = {**tenant.headers, "Idempotency-Key": "batch-7-item-3"}
    first = api.post("/v1/jobs", json=BODY, headers=headers)
    second = api.post("/v1/jobs", json=BODY, headers=headers)
    assert first.status_code == 201 and second.status_code == 200
    assert first.json()["id"] == second.json()["id"]
    assert count("jobs") == 1
    assert queued_messages(isolated_broker) == 1


def test_idempotency_key_reused_for_another_request_is_409(api, tenant, isolated_broker):
    headers = {**tenant.headers, "Idempotency-Key": "k1"}
    assert api.post("/v1/jobs", json=BODY, headers=headers).status_code == 201
    other = api.post("/v1/jobs", json={**BODY, "n": 3}, headers=headers)
    assert other.status_code == 409
    assert "different request" in other.json()["error"]
    assert count("jobs") == 1 and queued_messages(isolated_broker) == 1


def test_idempotency_keys_are_per_tenant(api, tenant, other_tenant, isolated_broker):
    a = api.post("/v1/jobs", json=BODY, headers={**tenant.headers, "Idempotency-Key": "same"})
    b = api.post("/v1/jobs", json=BODY, headers={**other_tenant.headers, "Idempotency-Key": "same"})
    assert a.status_code == b.status_code == 201
    assert a.json()["id"] != b.json()["id"]


def test_another_tenants_job_is_404_for_read_trace_cancel_and_list(
    api, tenant, other_tenant, isolated_broker
):
    job_id = api.post("/v1/jobs", json=BODY, headers=tenant.headers).json()["id"]
    for method, path in (
        ("get", f"/v1/jobs/{job_id}"),
        ("get", f"/v1/jobs/{job_id}/trace"),
        ("post", f"/v1/jobs/{job_id}/cancel"),
    ):
        response = getattr(api, method)(path, headers=other_tenant.headers)
        assert response.status_code == 404, path
    listed = api.get("/v1/jobs", headers=other_tenant.headers).json()
    assert listed["items"] == []
    # The owner's job was not touched by the other tenant's cancel.
    assert api.get(f"/v1/jobs/{job_id}", headers=tenant.headers).json()["status"] == "queued"


def test_upload_of_a_text_file_creates_a_job(api, tenant, isolated_broker):
    response = api.post(
        "/v1/jobs",
        data={"task": "medrec_extraction", "strategy": "single", "metadata": '{"mrn_ref": "r1"}'},
        files={"file": ("note.md", DOC.encode(), "text/markdown")},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["config"]["strategy"]["n"] == 1
    assert job["metadata"] == {"mrn_ref": "r1"}


def test_list_filters_by_status_and_task_and_pages_with_a_cursor(api, tenant, isolated_broker):
    ids = [
        api.post("/v1/jobs", json={**BODY, "n": 1 + i % 2}, headers=tenant.headers).json()["id"]
        for i in range(5)
    ]
    api.post(f"/v1/jobs/{ids[0]}/cancel", headers=tenant.headers)
    seen, cursor = [], None
    while True:
        url = "/v1/jobs?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = api.get(url, headers=tenant.headers).json()
        seen += [j["id"] for j in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))  # newest first, each exactly once
    cancelled = api.get("/v1/jobs?status=cancelled", headers=tenant.headers).json()["items"]
    assert [j["id"] for j in cancelled] == [ids[0]]
    assert api.get("/v1/jobs?task=contract_review", headers=tenant.headers).json()["items"] == []


def test_cancel_of_a_queued_job_ends_it_and_a_second_cancel_is_409(api, tenant, isolated_broker):
    job_id = api.post("/v1/jobs", json=BODY, headers=tenant.headers).json()["id"]
    response = api.post(f"/v1/jobs/{job_id}/cancel", headers=tenant.headers)
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    again = api.post(f"/v1/jobs/{job_id}/cancel", headers=tenant.headers)
    assert again.status_code == 409 and "already ended" in again.json()["error"]


def test_health_and_readiness_check_database_and_broker(api):
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = api.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "broker": "ok"}


def test_readiness_is_503_when_the_broker_is_unreachable(api, monkeypatch):
    from ponder import config, queue

    monkeypatch.setenv("PONDER_BROKER__URL", "redis://127.0.0.1:1/0")
    config.get_settings.cache_clear()
    queue.celery_app.cache_clear()
    try:
        ready = api.get("/readyz")
    finally:
        monkeypatch.undo()
        config.get_settings.cache_clear()
        queue.celery_app.cache_clear()
    assert ready.status_code == 503
    assert ready.json()["checks"]["broker"].startswith("error")


def test_api_keys_are_stored_hashed(tenant):
    with get_engine().connect() as conn:
        hashes = [r[0] for r in conn.execute(sa.text("select key_hash from api_keys"))]
    assert tenant.key not in hashes and all(len(h) == 64 for h in hashes)
