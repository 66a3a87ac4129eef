"""The result cache and single flight at a job's claim (ponder/jobs/cache.py), on the real
PostgreSQL: what answers from the cache, what runs, and what waits."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import select

from ponder.config import get_settings
from ponder.db import get_engine, session_scope
from ponder.jobs import cache, lease
from ponder.jobs import service as jobs
from ponder.models import Job, JobStatus, Notification, Tenant, TraceEvent, utcnow
from ponder.ops.retention import purge_all_expired

NOTE = "Metoprolol 50 mg by mouth twice daily."
RESULT = {"output": {"medications": []}, "summary": "0 item(s); passed every required check"}


@pytest.fixture(autouse=True)
def _no_worker(isolated_broker) -> None:
    """Messages go to a broker no worker reads: these tests run the claims themselves."""


def submit(tenant_id: str, **fields: Any) -> str:
    fields = {"task": "medrec_extraction", "document": NOTE, "seed": 7, "cache": "use", **fields}
    with session_scope() as session:
        job, _ = jobs.submit(
            session=session,
            tenant=session.get(Tenant, tenant_id),
            request=jobs.JobRequest(**fields),
            idempotency_key=None,
            settings=get_settings(),
        )
        return job.id


def claim(job_id: str, owner: str = "test") -> lease.Claim:
    with session_scope() as session:
        return lease.claim(session=session, job_id=job_id, owner=owner, settings=get_settings())


def finish(job_id: str, token: int, status: JobStatus, result: dict | None = RESULT) -> None:
    """End a claimed run as a worker would, having spent 120 prompt and 30 output tokens."""
    with session_scope() as session:
        job = lease.locked_for_run(session, job_id, token)
        assert job is not None
        job.prompt_tokens, job.completion_tokens = 120, 30
        lease.finish(
            session=session, job=job, status=status, result=result, settings=get_settings()
        )


def ran(tenant_id: str, status: JobStatus = JobStatus.succeeded, **fields: Any) -> str:
    """A job submitted, claimed and ended ``status``: a source for later ones."""
    job_id = submit(tenant_id, **fields)
    claimed = claim(job_id)
    assert claimed.outcome == "claimed"
    finish(job_id, claimed.token, status)
    return job_id


def job(job_id: str) -> Job:
    with session_scope() as session:
        row = session.get(Job, job_id)
        assert row is not None
        session.expunge(row)
        return row


def test_an_identical_job_is_answered_from_a_succeeded_one_without_a_run(tenant):
    source = ran(tenant.tenant_id)
    hit_id = submit(tenant.tenant_id, webhook_url="http://127.0.0.1:9/hook")

    assert claim(hit_id).outcome == "ended"

    hit = job(hit_id)
    assert (hit.status, hit.cached_from, hit.result) == ("succeeded", source, RESULT)
    assert (hit.prompt_tokens, hit.completion_tokens, hit.attempts, hit.lease_token) == (0, 0, 0, 0)
    with session_scope() as session:
        events = session.exec(select(TraceEvent).where(TraceEvent.job_id == hit_id)).all()
        notes = session.exec(select(Notification).where(Notification.job_id == hit_id)).all()
    assert [(e.kind, e.data["source_job_id"], e.data["tokens_saved"]) for e in events] == [
        ("cache_hit", source, 150)
    ]
    assert [n.channel for n in notes] == ["webhook"]  # its own notification


def test_priority_webhook_and_metadata_do_not_change_the_answer(tenant):
    source = ran(tenant.tenant_id, priority=2)
    hit_id = submit(tenant.tenant_id, priority=8, metadata={"run": "nightly"}, email="a@b.org")
    assert claim(hit_id).outcome == "ended"
    assert job(hit_id).cached_from == source


@pytest.mark.parametrize(
    "change",
    [
        {"seed": 8},
        {"document": NOTE + " Aspirin 81 mg daily."},
        {"n": 2},
        {"strategy": "single"},
        {"cache": "off"},
        {"cache": "refresh"},
    ],
    ids=lambda c: next(iter(c)) + ("=" + c["cache"] if "cache" in c else ""),
)
def test_a_job_that_differs_or_opts_out_runs(tenant, change):
    ran(tenant.tenant_id)
    other = submit(tenant.tenant_id, **change)
    assert claim(other).outcome == "claimed"
    assert job(other).cached_from is None


def test_another_model_runs(tenant):
    ran(tenant.tenant_id)
    other = submit(tenant.tenant_id)
    with get_engine().begin() as conn:  # as if submitted while the engine served another model
        conn.execute(
            sa.text("update jobs set config = jsonb_set(config, '{model}', '\"other\"') "
                    "where id = :j"),
            {"j": other},
        )  # fmt: skip
    assert claim(other).outcome == "claimed"


def test_another_tenants_identical_job_runs(tenant, other_tenant):
    ran(tenant.tenant_id)
    theirs = submit(other_tenant.tenant_id)
    assert claim(theirs).outcome == "claimed"
    assert job(theirs).cached_from is None


def test_a_job_that_did_not_succeed_answers_nothing(tenant):
    ran(tenant.tenant_id, status=JobStatus.needs_review)
    again = submit(tenant.tenant_id)
    assert claim(again).outcome == "claimed"


def test_a_job_run_with_cache_off_answers_nothing_later(tenant):
    off = ran(tenant.tenant_id, cache="off")
    assert job(off).cache_key is None
    assert claim(submit(tenant.tenant_id)).outcome == "claimed"


def test_a_refresh_run_answers_the_jobs_after_it(tenant):
    ran(tenant.tenant_id)
    refreshed = ran(tenant.tenant_id, cache="refresh")
    later = submit(tenant.tenant_id)
    assert claim(later).outcome == "ended"
    assert job(later).cached_from == refreshed  # the newest answer


def review(job_id: str, decision: str) -> None:
    """A person's decision on the job, as the review service stores it."""
    record = {"decision": decision, "reviewer": "r", "at": "2026-12-01T00:00:00Z",
              "answer": None if decision == "rejected" else {"medications": []}}  # fmt: skip
    with get_engine().begin() as conn:
        conn.execute(
            sa.text("update jobs set status = 'reviewed', "
                    "result = jsonb_set(result, '{review}', cast(:r as jsonb)) where id = :j"),
            {"j": job_id, "r": json.dumps(record)},
        )  # fmt: skip


def test_an_approved_review_answers_as_reviewed_and_a_rejected_one_does_not(tenant):
    approved = ran(tenant.tenant_id, status=JobStatus.needs_review)
    review(approved, "corrected")
    hit_id = submit(tenant.tenant_id)
    assert claim(hit_id).outcome == "ended"
    hit = job(hit_id)
    assert (hit.status, hit.cached_from) == ("reviewed", approved)
    assert hit.result is not None and hit.result["review"]["decision"] == "corrected"

    rejected = ran(tenant.tenant_id, status=JobStatus.needs_review, seed=9)
    review(rejected, "rejected")
    assert claim(submit(tenant.tenant_id, seed=9)).outcome == "claimed"


def test_a_purged_or_deleted_source_answers_nothing(tenant):
    source = ran(tenant.tenant_id)
    hit_id = submit(tenant.tenant_id)
    assert claim(hit_id).outcome == "ended"
    purge_all_expired(settings=get_settings(), now=utcnow() + timedelta(days=400))
    assert job(source).purged_at is not None
    # Neither the purged source nor its copy (which never ran) answers.
    after = submit(tenant.tenant_id)
    assert claim(after).outcome == "claimed"

    deleted = ran(tenant.tenant_id, seed=11)
    with get_engine().begin() as conn:
        conn.execute(sa.text("update jobs set deleted_at = now() where id = :j"), {"j": deleted})
    assert claim(submit(tenant.tenant_id, seed=11)).outcome == "claimed"


def test_an_identical_job_waits_for_the_run_in_flight_then_takes_its_answer(tenant):
    first = submit(tenant.tenant_id)
    second = submit(tenant.tenant_id)
    running = claim(first, owner="a")
    assert running.outcome == "claimed"

    waiting = claim(second, owner="b")
    assert (waiting.outcome, waiting.retry_in_s) == ("busy", cache.WAIT_FOR_TWIN_S)
    assert job(second).status == "queued"

    finish(first, running.token, JobStatus.succeeded)
    assert claim(second, owner="b").outcome == "ended"
    assert job(second).cached_from == first


def test_a_job_waiting_for_a_run_that_did_not_succeed_runs_itself(tenant):
    first = submit(tenant.tenant_id)
    second = submit(tenant.tenant_id)
    running = claim(first)
    assert claim(second).outcome == "busy"
    finish(first, running.token, JobStatus.needs_review)
    assert claim(second).outcome == "claimed"


def test_a_dead_run_is_not_waited_for(tenant):
    first = submit(tenant.tenant_id)
    second = submit(tenant.tenant_id)
    assert claim(first).outcome == "claimed"
    with get_engine().begin() as conn:
        conn.execute(
            sa.text("update jobs set lease_expires_at = now() - interval '1 second' where id = :j"),
            {"j": first},
        )
    assert claim(second).outcome == "claimed"


def test_the_key_leaves_out_what_does_not_shape_the_answer(tenant):
    a = job(submit(tenant.tenant_id, priority=1, cache="refresh"))
    b = job(submit(tenant.tenant_id, priority=9))
    c = job(submit(tenant.tenant_id, seed=8))
    assert cache.cache_key(a) == cache.cache_key(b) != cache.cache_key(c)


def test_a_job_that_does_not_say_takes_the_deployments_default(tenant):
    """The product default is ``use``; this suite's settings say ``off`` (tests/conftest.py)."""
    from ponder.config import Settings

    assert Settings.model_fields["result_cache"].default == "use"
    request = jobs.JobRequest(task="medrec_extraction", document=NOTE)
    for default in ("use", "off", "refresh"):
        settings = get_settings().model_copy(update={"result_cache": default})
        assert jobs.frozen_config(request, settings, "tenant-a")["cache"] == default
    said = jobs.JobRequest(task="medrec_extraction", document=NOTE, cache="off")
    settings = get_settings().model_copy(update={"result_cache": "use"})
    assert jobs.frozen_config(said, settings, "tenant-a")["cache"] == "off"


def _batch(api, tenant, lines: list[dict[str, Any]], **form: str):
    body = "".join(json.dumps(line) + "\n" for line in lines)
    return api.post(
        "/v1/batches",
        files={"file": ("items.jsonl", body.encode(), "application/jsonl")},
        data=form,
        headers=tenant.headers,
    )


def test_a_batchs_cache_applies_to_the_lines_that_do_not_say_theirs(api, tenant):
    lines = [
        {"custom_id": "a", "task": "medrec_extraction", "document": NOTE},
        {"custom_id": "b", "task": "medrec_extraction", "document": NOTE, "cache": "off"},
    ]
    response = _batch(api, tenant, lines, cache="use")
    assert response.status_code == 201, response.text
    with session_scope() as session:
        rows = session.exec(select(Job).where(Job.batch_id == response.json()["id"])).all()
        by_id = {row.custom_id: row.config["cache"] for row in rows}
    assert by_id == {"a": "use", "b": "off"}


def test_an_unknown_batch_cache_is_refused_and_writes_nothing(api, tenant):
    with get_engine().connect() as conn:
        before = conn.execute(sa.text("select count(*) from batches")).scalar_one()
    line = {"custom_id": "a", "task": "medrec_extraction", "document": NOTE}
    response = _batch(api, tenant, [line], cache="sometimes")
    assert response.status_code in (400, 422)
    assert "cache" in response.text and "use" in response.text
    with get_engine().connect() as conn:
        assert conn.execute(sa.text("select count(*) from batches")).scalar_one() == before


def test_hits_and_tokens_saved_reach_the_metrics(tenant):
    from ponder.ops.rollups import compact_and_read

    def counters() -> tuple[float, float]:
        rollups = compact_and_read(get_engine())
        key = ("medrec_extraction",)
        return (
            rollups.get("cache_hits", {}).get(key, 0.0),
            rollups.get("cache_tokens_saved", {}).get(key, 0.0),
        )

    ran(tenant.tenant_id)
    before = counters()
    assert claim(submit(tenant.tenant_id)).outcome == "ended"
    assert claim(submit(tenant.tenant_id, seed=8)).outcome == "claimed"  # a run, not a hit
    hits, saved = counters()
    assert (hits - before[0], saved - before[1]) == (1, 150)
