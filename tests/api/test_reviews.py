"""The review API: queue, context (audit-recorded), decisions and the public job after one."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from ponder.db import get_engine, session_scope
from ponder.models import JobStatus, Reviewer, utcnow
from ponder.reviews.service import open_job
from tests.ponder.reviews.jobs import GOOD, INCOMPLETE, answer, ended_job

HOOK = "http://127.0.0.1:9/hook"


def _row(sql: str, **params):
    with get_engine().connect() as conn:
        return conn.execute(sa.text(sql), params).first()


def test_the_queue_lists_jobs_awaiting_review_with_counts(api, tenant, isolated_broker):
    flagged = ended_job(tenant.tenant_id)
    ended_job(tenant.tenant_id, status=JobStatus.succeeded, output=GOOD, failing=())  # not sampled
    page = api.get("/v1/reviews", headers=tenant.headers).json()
    assert [i["job_id"] for i in page["items"]] == [flagged]
    assert page["items"][0]["failing_verifiers"] == ["completeness"]
    assert page["counts"] == {"medrec_extraction": 1}
    none = api.get("/v1/reviews?failing_verifier=dose_format", headers=tenant.headers).json()
    assert none["items"] == []


def test_a_correction_ends_the_job_reviewed_with_its_diff_and_the_public_answer(
    api, tenant, isolated_broker
):
    job_id = ended_job(tenant.tenant_id, webhook_url=HOOK, email="rx@example.org")
    response = api.post(
        f"/v1/jobs/{job_id}/review",
        json={"decision": "corrected", "answer": GOOD},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    review = response.json()
    assert review["decision"] == "corrected"
    added = {"path": "medications.1", "before": None, "after": GOOD["medications"][1]}
    assert review["diff"] == [added]
    assert all(v["passed"] for v in review["verdicts"])
    assert _row("select status from jobs where id = :j", j=job_id).status == "reviewed"
    job = api.get(f"/v1/jobs/{job_id}", headers=tenant.headers).json()
    assert job["answer"] == GOOD and job["provenance"] == "human_reviewed"
    assert job["result"]["output"] == INCOMPLETE  # the machine's answer stays
    with get_engine().connect() as conn:
        events = set(
            conn.execute(
                sa.text("select channel, event_type from notifications where job_id = :j"),
                {"j": job_id},
            ).all()
        )
    assert {("webhook", "job.reviewed"), ("email", "job.reviewed")} <= events


def test_an_unreviewed_job_is_the_machines_answer(api, tenant, isolated_broker):
    job_id = ended_job(tenant.tenant_id)
    job = api.get(f"/v1/jobs/{job_id}", headers=tenant.headers).json()
    assert job["answer"] == INCOMPLETE and job["provenance"] == "machine"


def test_approving_another_candidate_saves_its_answer(api, tenant, isolated_broker):
    job_id = ended_job(tenant.tenant_id, others=(GOOD,))
    ctx = api.get(f"/v1/jobs/{job_id}/review", headers=tenant.headers).json()
    other = next(c for c in ctx["candidates"] if not c["selected"])
    response = api.post(
        f"/v1/jobs/{job_id}/review",
        json={"decision": "approved_candidate", "candidate_id": other["id"]},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    assert response.json()["answer_after"] == GOOD


def test_every_view_and_decision_is_in_the_jobs_audit(api, tenant, isolated_broker):
    job_id = ended_job(tenant.tenant_id)
    ctx = api.get(f"/v1/jobs/{job_id}/review", headers=tenant.headers).json()
    assert ctx["document"] and ctx["evidence_spans"][0]["located"] is True
    api.post(f"/v1/jobs/{job_id}/review", json={"decision": "approved"}, headers=tenant.headers)
    audit = api.get(f"/v1/audit?job_id={job_id}", headers=tenant.headers).json()["items"]
    assert [e["action"] for e in audit][:2] == ["review.decide", "review.view"]


def test_a_correction_that_does_not_fit_the_schema_is_422_naming_the_field(
    api, tenant, isolated_broker
):
    job_id = ended_job(tenant.tenant_id)
    response = api.post(
        f"/v1/jobs/{job_id}/review",
        json={"decision": "corrected", "answer": answer(unit="kg")},
        headers=tenant.headers,
    )
    assert response.status_code == 422
    assert "medications.0.unit" in response.json()["error"]
    assert _row("select status from jobs where id = :j", j=job_id).status == "needs_review"
    assert _row("select count(*) as n from reviews").n == 0


def test_a_correction_still_failing_checks_needs_a_reason(api, tenant, isolated_broker):
    job_id = ended_job(tenant.tenant_id)
    body = {"decision": "corrected", "answer": INCOMPLETE}
    refused = api.post(f"/v1/jobs/{job_id}/review", json=body, headers=tenant.headers)
    assert refused.status_code == 422 and "completeness" in refused.json()["error"]
    body["reason"] = "metoprolol was stopped last week"
    saved = api.post(f"/v1/jobs/{job_id}/review", json=body, headers=tenant.headers)
    assert saved.status_code == 201, saved.text


def test_a_job_not_awaiting_review_is_409(api, tenant, isolated_broker):
    job_id = ended_job(tenant.tenant_id, status=JobStatus.succeeded, output=GOOD, failing=())
    response = api.post(
        f"/v1/jobs/{job_id}/review", json={"decision": "approved"}, headers=tenant.headers
    )
    assert response.status_code == 409 and "not awaiting review" in response.json()["error"]


def test_a_decision_on_a_job_locked_by_a_reviewer_is_409_naming_the_expiry(
    api, tenant, isolated_broker
):
    job_id = ended_job(tenant.tenant_id)
    with session_scope() as session:
        reviewer = Reviewer(tenant_id=tenant.tenant_id, email="a@example.org", password_hash="x")
        session.add(reviewer)
        session.flush()
        open_job(session=session, tenant_id=tenant.tenant_id, job_id=job_id,
                 reviewer_id=reviewer.id)  # fmt: skip
    expires = _row("select review_lock_expires_at as e from jobs where id = :j", j=job_id).e
    assert expires > utcnow() + timedelta(seconds=800)
    response = api.post(
        f"/v1/jobs/{job_id}/review", json={"decision": "approved"}, headers=tenant.headers
    )
    assert response.status_code == 409
    assert expires.isoformat() in response.json()["error"]
    assert "a@example.org" in response.json()["error"]


def test_a_rejection_without_a_reason_is_422(api, tenant, isolated_broker):
    job_id = ended_job(tenant.tenant_id)
    response = api.post(
        f"/v1/jobs/{job_id}/review", json={"decision": "rejected"}, headers=tenant.headers
    )
    assert response.status_code == 422 and "reason" in response.json()["error"]
    assert _row("select status from jobs where id = :j", j=job_id).status == "needs_review"


def test_an_unknown_job_is_404(api, tenant):
    missing = "00000000-0000-0000-0000-000000000000"
    viewed = api.get(f"/v1/jobs/{missing}/review", headers=tenant.headers)
    assert viewed.status_code == 404 and viewed.json()["error"] == f"no job {missing}"
    response = api.post(
        f"/v1/jobs/{missing}/review", json={"decision": "approved"}, headers=tenant.headers
    )
    assert response.status_code == 404 and response.json()["error"] == f"no job {missing}"


def test_another_tenants_job_is_404_and_absent_from_its_queue_and_stats(
    api, tenant, other_tenant, isolated_broker
):
    job_id = ended_job(tenant.tenant_id)
    api.post(
        f"/v1/jobs/{ended_job(tenant.tenant_id)}/review",
        json={"decision": "approved"},
        headers=tenant.headers,
    )
    other = other_tenant.headers
    assert api.get(f"/v1/jobs/{job_id}/review", headers=other).status_code == 404
    response = api.post(f"/v1/jobs/{job_id}/review", json={"decision": "approved"}, headers=other)
    assert response.status_code == 404
    assert api.get("/v1/reviews", headers=other).json()["items"] == []
    assert api.get("/v1/reviews/stats", headers=other).json() == {}
    assert api.get("/v1/reviews/stats", headers=tenant.headers).json() != {}


def test_a_reviewed_batch_item_shows_in_the_batch_counts_and_results(api, tenant, isolated_broker):
    import json

    from tests.ponder.reviews.jobs import NOTE

    line = {"custom_id": "note-1", "task": "medrec_extraction", "document": NOTE,
            "strategy": "single"}  # fmt: skip
    created = api.post(
        "/v1/batches",
        files={"file": ("items.jsonl", json.dumps(line).encode() + b"\n")},
        headers=tenant.headers,
    )
    assert created.status_code == 201, created.text
    batch_id = created.json()["id"]
    result = {"output": INCOMPLETE, "failing_checks": [], "summary": "test"}
    with get_engine().begin() as conn:  # the item ended needs_review, as a run ends it
        conn.execute(
            sa.text("update jobs set status = 'needs_review', finished_at = now(), "
                    "result = cast(:r as jsonb) where batch_id = :b"),
            {"r": json.dumps(result), "b": batch_id},
        )  # fmt: skip
    (job_id,) = _row("select id from jobs where batch_id = :b", b=batch_id)
    decided = api.post(f"/v1/jobs/{job_id}/review", json={"decision": "corrected",
                       "answer": GOOD}, headers=tenant.headers)  # fmt: skip
    assert decided.status_code == 201, decided.text
    batch = api.get(f"/v1/batches/{batch_id}", headers=tenant.headers).json()
    assert batch["counts"]["reviewed"] == 1 and batch["counts"]["needs_review"] == 0
    results = api.get(f"/v1/batches/{batch_id}/results?partial=true", headers=tenant.headers)
    (item,) = [json.loads(x) for x in results.text.splitlines() if x.strip()]
    assert item["custom_id"] == "note-1" and item["status"] == "reviewed"
    assert item["result"]["review"]["answer"] == GOOD
    assert item["result"]["review"]["provenance"] == "human_reviewed"
