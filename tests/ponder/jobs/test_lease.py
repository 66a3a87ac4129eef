"""The lease: one live run per job, fenced writes, bounded attempts, and the reconciler."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from ponder.config import get_settings
from ponder.db import get_engine, session_scope
from ponder.engines.base import GenerationResult
from ponder.errors import LeaseLost
from ponder.jobs import lease
from ponder.jobs import service as jobs
from ponder.jobs.reconcile import reconcile
from ponder.jobs.trace import PostgresRecorder
from ponder.models import Job, Notification, Tenant, utcnow
from tasks.medrec_extraction import TASK
from tests.conftest import queued_messages


@pytest.fixture
def job_id(tenant, isolated_broker) -> str:
    with session_scope() as session:
        t = session.get(Tenant, tenant.tenant_id)
        job, _ = jobs.submit(
            session=session,
            tenant=t,
            request=jobs.JobRequest(task="medrec_extraction", document="Metoprolol 50 mg daily."),
            idempotency_key=None,
            settings=get_settings(),
        )
        return job.id


def claim(job_id: str, owner: str) -> lease.Claim:
    with session_scope() as session:
        return lease.claim(session=session, job_id=job_id, owner=owner, settings=get_settings())


def expire_lease(job_id: str) -> None:
    with get_engine().begin() as conn:
        conn.execute(
            sa.text("update jobs set lease_expires_at = now() - interval '1 second' where id = :j"),
            {"j": job_id},
        )


def test_a_second_claim_while_the_lease_is_live_is_busy(job_id):
    first = claim(job_id, "a")
    second = claim(job_id, "b")
    assert first.outcome == "claimed" and first.attempt == 1
    assert second.outcome == "busy" and second.retry_in_s > 0


def test_a_run_that_lost_its_lease_cannot_write(job_id):
    first = claim(job_id, "a")
    expire_lease(job_id)
    second = claim(job_id, "b")
    assert second.outcome == "claimed" and second.token == first.token + 1
    stale = PostgresRecorder(
        job_id=job_id, token=first.token, attempt=1, task=TASK, settings=get_settings()
    )
    with pytest.raises(LeaseLost):
        stale.event("samples", {"n": 1})
    with pytest.raises(LeaseLost):
        stale.save_step("sample", GenerationResult([], 1, 0, 0.0, "m", 0.0, 0.0), [])
    with session_scope() as session:
        assert lease.locked_for_run(session, job_id, first.token) is None
        assert lease.locked_for_run(session, job_id, second.token) is not None


def test_attempts_are_bounded_and_an_exhausted_job_fails_once_with_a_reason(job_id):
    max_attempts = get_settings().worker.max_attempts
    for attempt in range(1, max_attempts + 1):
        got = claim(job_id, f"w{attempt}")
        assert got.outcome == "claimed" and got.attempt == attempt
        expire_lease(job_id)  # the worker died mid-run
    assert claim(job_id, "last").outcome == "exhausted"
    assert claim(job_id, "again").outcome == "ended"
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.status == "failed"
        assert f"gave up after {max_attempts} attempts" in (job.error or "")


def test_an_ended_job_is_not_claimed_again(job_id, api, tenant):
    api.post(f"/v1/jobs/{job_id}/cancel", headers=tenant.headers)
    assert claim(job_id, "a").outcome == "ended"


def test_reconciler_resends_stale_queued_jobs_and_expired_runs(job_id, isolated_broker):
    isolated_broker.flushdb()
    assert reconcile_now().requeued_jobs == 0  # fresh: the first message is still in flight
    with get_engine().begin() as conn:
        conn.execute(
            sa.text("update jobs set enqueued_at = :t where id = :j"),
            {"t": utcnow() - timedelta(hours=1), "j": job_id},
        )
    assert reconcile_now().requeued_jobs == 1
    assert queued_messages(isolated_broker) == 1
    claim(job_id, "a")
    expire_lease(job_id)  # the run's worker is gone
    assert reconcile_now().requeued_jobs == 1


def test_reconciler_resends_due_notifications(job_id, api, tenant, isolated_broker):
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None
        session.add(
            Notification(
                job_id=job_id,
                tenant_id=job.tenant_id,
                channel="email",
                target="a@example.org",
                event_type="job.failed",
                message_id="msg_test",
                payload={},
                next_attempt_at=utcnow() - timedelta(minutes=5),
            )
        )
    isolated_broker.flushdb()
    assert reconcile_now().resent_notifications == 1
    assert queued_messages(isolated_broker) == 1


def reconcile_now():
    with session_scope() as session:
        return reconcile(session=session, settings=get_settings())


def test_a_rolled_back_submission_leaves_no_row_and_sends_nothing(tenant, isolated_broker):
    with pytest.raises(RuntimeError), session_scope() as session:
        t = session.get(Tenant, tenant.tenant_id)
        jobs.submit(
            session=session,
            tenant=t,
            request=jobs.JobRequest(task="medrec_extraction", document="Aspirin 81 mg daily."),
            idempotency_key=None,
            settings=get_settings(),
        )
        raise RuntimeError("crash before commit")
    with get_engine().connect() as conn:
        assert conn.execute(sa.text("select count(*) from jobs")).scalar_one() == 0
    assert queued_messages(isolated_broker) == 0


def usage(job_id: str) -> tuple[int, int, int]:
    with get_engine().connect() as conn:
        row = conn.execute(
            sa.text("select prompt_tokens, cached_tokens, charges from jobs where id = :j"),
            {"j": job_id},
        ).one()
    return row.prompt_tokens, row.cached_tokens, row.charges


def test_a_charge_retried_after_its_commit_landed_is_counted_once(job_id, monkeypatch):
    from ponder.jobs import trace

    got = claim(job_id, "a")
    recorder = PostgresRecorder(
        job_id=job_id, token=got.token, attempt=got.attempt, task=TASK, settings=get_settings()
    )
    result = GenerationResult([], 100, 20, 0.0, "m", 0.0, 0.0)  # 100 prompt, 20 cached

    def landed_then_ack_lost(work, *, what):
        # The first try commits; its acknowledgement is lost, so with_retries runs it again.
        work(False)
        return work(True)

    monkeypatch.setattr(trace, "with_retries", landed_then_ack_lost)
    recorder.charge(result)
    assert usage(job_id) == (100, 20, 1)
    recorder.charge(result)  # the next call is charged, once too
    assert usage(job_id) == (200, 40, 2)
    monkeypatch.undo()
    recorder.charge(result)
    assert usage(job_id) == (300, 60, 3)
    # A later attempt's run starts from the count in the row.
    expire_lease(job_id)
    again = claim(job_id, "b")
    PostgresRecorder(
        job_id=job_id, token=again.token, attempt=again.attempt, task=TASK, settings=get_settings()
    ).charge(result)
    assert usage(job_id) == (400, 80, 4)
