"""The harness re-sends its own jobs that stay queued, as the reconciler would (a worker of
another database on the same broker may have taken their messages)."""

from __future__ import annotations

from datetime import timedelta

from ponder.config import get_settings
from ponder.db import session_scope
from ponder.evaluation.harness import _resend_stale
from ponder.jobs import service as jobs
from ponder.models import Job, Tenant, utcnow
from tests.conftest import queued_messages


def submit(tenant_id: str) -> str:
    with session_scope() as session:
        tenant = session.get(Tenant, tenant_id)
        request = jobs.JobRequest(task="math_answer", document="1 + 1?", strategy="single")
        job, _ = jobs.submit(
            session=session, tenant=tenant, request=request, idempotency_key=None,
            settings=get_settings(),
        )  # fmt: skip
        return job.id


def test_a_job_queued_too_long_is_sent_again_and_a_fresh_one_is_not(tenant, isolated_broker):
    stale_id, fresh_id = submit(tenant.tenant_id), submit(tenant.tenant_id)
    with session_scope() as session:
        stale = session.get(Job, stale_id)
        stale.enqueued_at = utcnow() - timedelta(minutes=10)
    isolated_broker.flushdb()

    with session_scope() as session:
        _resend_stale(session, [stale_id, fresh_id], get_settings())

    assert queued_messages(isolated_broker) == 1
    with session_scope() as session:
        assert session.get(Job, stale_id).enqueued_at > utcnow() - timedelta(minutes=1)
