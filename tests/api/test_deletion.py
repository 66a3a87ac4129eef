"""``DELETE /v1/jobs/{id}`` and ``/v1/batches/{id}``: content gone from every table at once, a
tombstone left, idempotent; legal holds (api/routes/lifecycle.py, ponder/ops/retention.py)."""

from __future__ import annotations

import json

import sqlalchemy as sa

from ponder.config import get_settings
from ponder.db import get_engine, session_scope
from ponder.jobs.lease import renew_lease
from ponder.models import Job
from tests.conftest import TenantKey
from tests.content import canary, end_with_content, submit, where_found


def _job(job_id: str) -> Job:
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None
        session.expunge(job)
        return job


def _key_id(tenant: TenantKey) -> str:
    with get_engine().connect() as conn:
        return str(
            conn.execute(
                sa.text("select id from api_keys where tenant_id = :t"), {"t": tenant.tenant_id}
            ).scalar_one()
        )


def test_a_deleted_jobs_content_is_gone_from_every_table(api, tenant, isolated_broker):
    mark = canary()
    job_id = submit(api, tenant.headers, mark)
    end_with_content(job_id, mark)
    assert {
        "jobs.document",
        "candidates.text",
        "trace_events.data",
        "notifications.payload",
    } <= set(where_found(mark))  # the check can see content where it is
    response = api.delete(f"/v1/jobs/{job_id}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert where_found(mark) == []
    job = _job(job_id)
    assert (job.status, job.prompt_tokens, job.completion_tokens) == ("succeeded", 120, 40)


def test_a_deletion_leaves_a_tombstone_naming_the_key(api, tenant, isolated_broker):
    job_id = submit(api, tenant.headers, canary())
    body = api.delete(f"/v1/jobs/{job_id}", headers=tenant.headers).json()
    assert body["kind"] == "job" and body["deleted_by"] == _key_id(tenant)
    job = _job(job_id)
    assert job.deleted_at is not None and job.deleted_by == _key_id(tenant)
    assert job.purged_at is not None


def test_deleting_twice_answers_the_same_tombstone(api, tenant, isolated_broker):
    job_id = submit(api, tenant.headers, canary())
    first = api.delete(f"/v1/jobs/{job_id}", headers=tenant.headers)
    second = api.delete(f"/v1/jobs/{job_id}", headers=tenant.headers)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()


def test_a_queued_job_is_cancelled_before_it_is_deleted(api, tenant, isolated_broker):
    job_id = submit(api, tenant.headers, canary())
    body = api.delete(f"/v1/jobs/{job_id}", headers=tenant.headers).json()
    assert body["status"] == "cancelled" and _job(job_id).status == "cancelled"


def test_a_running_jobs_run_is_fenced_out_by_the_deletion(api, tenant, isolated_broker):
    job_id = submit(api, tenant.headers, canary())
    with get_engine().begin() as conn:
        conn.execute(
            sa.text("update jobs set status = 'running', lease_token = 7 where id = :id"),
            {"id": job_id},
        )
    body = api.delete(f"/v1/jobs/{job_id}", headers=tenant.headers).json()
    assert body["status"] == "cancelled"
    with session_scope() as session:  # the run's next write starts by renewing its lease
        assert renew_lease(session=session, job_id=job_id, token=7, settings=get_settings()) is None


def test_a_job_under_legal_hold_is_not_deleted(api, tenant, isolated_broker):
    mark = canary()
    job_id = submit(api, tenant.headers, mark)
    assert api.post(f"/v1/jobs/{job_id}/legal-hold", headers=tenant.headers).status_code == 200
    response = api.delete(f"/v1/jobs/{job_id}", headers=tenant.headers)
    assert response.status_code == 409
    assert "legal hold" in response.json()["error"]
    assert "jobs.document" in where_found(mark) and _job(job_id).deleted_at is None


def test_a_released_hold_lets_the_deletion_through(api, tenant, isolated_broker):
    job_id = submit(api, tenant.headers, canary())
    api.post(f"/v1/jobs/{job_id}/legal-hold", headers=tenant.headers)
    released = api.delete(f"/v1/jobs/{job_id}/legal-hold", headers=tenant.headers)
    assert released.status_code == 200 and released.json()["legal_hold"] is False
    assert api.delete(f"/v1/jobs/{job_id}", headers=tenant.headers).status_code == 200


def test_an_item_of_a_held_batch_is_not_deleted(api, tenant, isolated_broker):
    batch_id, (item_id,) = _batch(api, tenant, canary())
    assert api.post(f"/v1/batches/{batch_id}/legal-hold", headers=tenant.headers).status_code == 200
    response = api.delete(f"/v1/jobs/{item_id}", headers=tenant.headers)
    assert response.status_code == 409 and batch_id in response.json()["error"]


def _batch(api, tenant: TenantKey, mark: str) -> tuple[str, list[str]]:
    line = {
        "custom_id": "item-1",
        "task": "medrec_extraction",
        "document": f"Patient {mark}: aspirin 81 mg daily.",
        "strategy": "single",
        "metadata": {"mrn": mark},
    }
    response = api.post(
        "/v1/batches",
        files={"file": ("items.jsonl", json.dumps(line).encode() + b"\n")},
        data={"metadata": json.dumps({"ward": mark})},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    batch_id = response.json()["id"]
    with get_engine().connect() as conn:
        items = conn.execute(
            sa.text("select id from jobs where batch_id = :b"), {"b": batch_id}
        ).scalars()
        return batch_id, list(items)


def test_deleting_a_batch_removes_its_and_its_items_content(api, tenant, isolated_broker):
    mark = canary()
    batch_id, (item_id,) = _batch(api, tenant, mark)
    end_with_content(item_id, mark)
    assert "jobs.document" in where_found(mark)
    first = api.delete(f"/v1/batches/{batch_id}", headers=tenant.headers)
    second = api.delete(f"/v1/batches/{batch_id}", headers=tenant.headers)
    assert first.status_code == second.status_code == 200 and first.json() == second.json()
    assert where_found(mark) == []
    assert _job(item_id).deleted_by == _key_id(tenant)


def test_deleting_an_unknown_job_is_404(api, tenant):
    response = api.delete("/v1/jobs/no-such-job", headers=tenant.headers)
    assert response.status_code == 404 and "no job" in response.json()["error"]


def test_another_tenants_job_cannot_be_deleted(api, tenant, other_tenant, isolated_broker):
    mark = canary()
    job_id = submit(api, tenant.headers, mark)
    response = api.delete(f"/v1/jobs/{job_id}", headers=other_tenant.headers)
    assert response.status_code == 404
    assert "jobs.document" in where_found(mark)


def test_a_hold_on_an_unknown_job_is_404(api, tenant):
    response = api.post("/v1/jobs/no-such-job/legal-hold", headers=tenant.headers)
    assert response.status_code == 404 and "no job" in response.json()["error"]


def test_a_deleted_job_cannot_be_held(api, tenant, isolated_broker):
    job_id = submit(api, tenant.headers, canary())
    api.delete(f"/v1/jobs/{job_id}", headers=tenant.headers)
    response = api.post(f"/v1/jobs/{job_id}/legal-hold", headers=tenant.headers)
    assert response.status_code == 409 and "deleted" in response.json()["error"]


def _failed_and_ended(batch_id: str, item_id: str) -> None:
    with get_engine().begin() as conn:
        conn.execute(
            sa.text("update jobs set status = 'failed', finished_at = now() where id = :j"),
            {"j": item_id},
        )
        conn.execute(
            sa.text("update batches set finished_at = now() where id = :b"), {"b": batch_id}
        )


def test_a_deleted_batch_cannot_be_retried(api, tenant, isolated_broker):
    batch_id, (item_id,) = _batch(api, tenant, canary())
    _failed_and_ended(batch_id, item_id)
    assert api.delete(f"/v1/batches/{batch_id}", headers=tenant.headers).status_code == 200
    response = api.post(f"/v1/batches/{batch_id}/retry", headers=tenant.headers)
    assert response.status_code == 409 and "was deleted" in response.json()["error"]
    assert _job(item_id).status == "failed"


def test_a_purged_item_is_not_retried_with_its_document_gone(api, tenant, isolated_broker):
    batch_id, (item_id,) = _batch(api, tenant, canary())
    _failed_and_ended(batch_id, item_id)
    with get_engine().begin() as conn:
        conn.execute(
            sa.text("update jobs set purged_at = now(), document = '' where id = :j"),
            {"j": item_id},
        )
    response = api.post(f"/v1/batches/{batch_id}/retry", headers=tenant.headers)
    assert response.status_code == 409 and "purged" in response.json()["error"]
    assert _job(item_id).status == "failed"
