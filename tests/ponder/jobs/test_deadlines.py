"""Deadlines on the real PostgreSQL: a job whose ``complete_by`` passed before a run started it
ends ``expired`` (at its claim, or by the reconciler while it waits in the queue) with one
notification; within a priority, a message runs the tenant's job with the earliest deadline."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from ponder.config import get_settings
from ponder.db import get_engine, session_scope
from ponder.jobs import lease
from ponder.jobs.reconcile import reconcile
from ponder.models import Job
from tests.conftest import make_tenant, queued_messages

DOC = "Metoprolol 50 mg twice daily."
VISITS = itertools.count(1)


def submit(api: Any, tenant: Any, in_s: float | None, **extra: Any) -> str:
    # A document of its own: an identical one could be answered from the result cache.
    document = f"{DOC} Visit {next(VISITS)}."
    body: dict[str, Any] = {"task": "medrec_extraction", "document": document, **extra}
    if in_s is not None:
        body["complete_by"] = (datetime.now(UTC) + timedelta(seconds=in_s)).isoformat()
    response = api.post("/v1/jobs", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def claim(job_id: str, owner: str = "w") -> lease.Claim:
    with session_scope() as session:
        return lease.claim(session=session, job_id=job_id, owner=owner, settings=get_settings())


def job_row(job_id: str) -> Job:
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None
        session.expunge(job)
        return job


def notifications_of(job_id: str) -> list[tuple[str, str]]:
    with get_engine().connect() as conn:
        rows = conn.execute(
            sa.text("select channel, event_type from notifications where job_id = :j"),
            {"j": job_id},
        ).all()
    return [(channel, event) for channel, event in rows]


def test_a_job_past_its_deadline_at_claim_ends_expired_with_one_notification(
    api, tenant, isolated_broker
):
    job_id = submit(api, tenant, -60, email="ops@example.org")
    assert claim(job_id).outcome == "expired"
    assert claim(job_id, "another").outcome == "ended"  # its other messages find it ended
    job = job_row(job_id)
    assert job.status == "expired" and job.started_at is None and job.attempts == 0
    assert "deadline" in (job.error or "") and job.finished_at is not None
    assert notifications_of(job_id) == [("email", "job.expired")]
    public = api.get(f"/v1/jobs/{job_id}", headers=tenant.headers).json()
    assert public["status"] == "expired" and public["complete_by"] is not None


def test_a_job_before_its_deadline_is_claimed(api, tenant, isolated_broker):
    job_id = submit(api, tenant, 3600, email="ops@example.org")
    assert claim(job_id).outcome == "claimed"
    assert notifications_of(job_id) == []


def test_a_job_whose_run_died_past_its_deadline_is_expired_not_run_again(
    api, tenant, isolated_broker
):
    job_id = submit(api, tenant, 3600, email="ops@example.org")
    assert claim(job_id).outcome == "claimed"
    with get_engine().begin() as conn:  # its worker died, and the deadline passed since
        conn.execute(
            sa.text(
                "update jobs set lease_expires_at = now() - interval '1 second', "
                "complete_by = now() - interval '1 second' where id = :j"
            ),
            {"j": job_id},
        )
    assert claim(job_id, "next").outcome == "expired"
    assert job_row(job_id).status == "expired"
    assert notifications_of(job_id) == [("email", "job.expired")]


def reconcile_now() -> Any:
    with session_scope() as session:
        return reconcile(session=session, settings=get_settings())


def test_the_reconciler_expires_queued_jobs_past_their_deadline_once(api, tenant, isolated_broker):
    past = submit(api, tenant, -1, email="ops@example.org")
    future = submit(api, tenant, 3600)
    none = submit(api, tenant, None)
    running = submit(api, tenant, 3600)
    assert claim(running).outcome == "claimed"
    with get_engine().begin() as conn:  # its deadline passes while it runs: its run stops it
        conn.execute(
            sa.text("update jobs set complete_by = now() - interval '1 second' where id = :j"),
            {"j": running},
        )
    assert reconcile_now().expired_jobs == 1
    assert reconcile_now().expired_jobs == 0
    statuses = {j: job_row(j).status for j in (past, future, none, running)}
    assert statuses == {past: "expired", future: "queued", none: "queued", running: "running"}
    assert notifications_of(past) == [("email", "job.expired")]


def test_a_message_runs_the_queued_job_with_the_earliest_deadline_of_its_priority(
    api, tenant, other_tenant, isolated_broker
):
    plain = submit(api, tenant, None)
    later = submit(api, tenant, 7200)
    sooner = submit(api, tenant, 3600)
    submit(api, tenant, 600, priority=3)  # sooner still, but another priority
    submit(api, other_tenant, 60)  # sooner still, but another tenant's: fairness decides that
    isolated_broker.flushdb()
    turns = {}
    for job_id in (plain, later, sooner):
        with session_scope() as session:
            turns[job_id] = lease.fairer_job(session=session, job_id=job_id)
    assert turns[plain] is not None and turns[plain].job_id == sooner
    assert turns[later] is not None and turns[later].job_id == sooner
    assert turns[sooner] is None  # the most urgent runs from its own message
    # Each message whose job gave up its turn is sent again: no job loses its message.
    assert queued_messages(isolated_broker) == 2


def test_a_started_job_is_not_chosen_over_the_message_job(api, tenant, isolated_broker):
    plain = submit(api, tenant, None)
    sooner = submit(api, tenant, 3600)
    assert claim(sooner).outcome == "claimed"
    with session_scope() as session:
        assert lease.fairer_job(session=session, job_id=plain) is None


def test_another_tenant_fewer_running_still_goes_first(api, tenant, isolated_broker):
    # The deadline orders a tenant's own jobs; whose turn it is stays the fairness rule's.
    busy = make_tenant("busy-with-deadlines")
    first = submit(api, busy, 60)
    assert claim(first).outcome == "claimed"
    mine = submit(api, busy, 120)
    submit(api, busy, 90)
    theirs = submit(api, tenant, None)
    with session_scope() as session:
        turn = lease.fairer_job(session=session, job_id=mine)
    assert turn is not None and turn.job_id == theirs
