"""Deaths attributed before convicting, quarantine, the run ceiling and the preemption release
(ponder/jobs/deaths.py, the claim and ``release_preempted`` in ponder/jobs/service.py)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from ponder.config import Settings, WorkerSettings, get_settings
from ponder.db import get_engine, session_scope
from ponder.jobs import lease
from ponder.jobs import service as jobs
from ponder.models import Job, Tenant
from tests.conftest import queued_messages

# Lease owners as worker/tasks.py writes them: host:pid:boot:thread.
W1 = "host-a:100:b1"
W2 = "host-b:200:b2"


def submit(tenant) -> str:
    with session_scope() as session:
        t = session.get(Tenant, tenant.tenant_id)
        job, _ = jobs.submit(
            session=session,
            tenant=t,
            # Identical jobs, each run on its own: these tests are about deaths, not the cache.
            request=jobs.JobRequest(
                task="medrec_extraction", document="Metoprolol 50 mg daily.", cache="off"
            ),
            idempotency_key=None,
            settings=get_settings(),
        )
        return job.id


@pytest.fixture
def two_jobs(tenant, isolated_broker) -> tuple[str, str]:
    return submit(tenant), submit(tenant)


def claim(job_id: str, owner: str, *, isolated: bool = False) -> lease.Claim:
    with session_scope() as session:
        return lease.claim(
            session=session, job_id=job_id, owner=owner, settings=get_settings(), isolated=isolated
        )


def expire(*job_ids: str) -> None:
    """Their worker died: the leases run out."""
    with get_engine().begin() as conn:
        conn.execute(
            sa.text("update jobs set lease_expires_at = now() - interval '1 second' "
                    "where id = any(:ids)"),
            {"ids": list(job_ids)},
        )  # fmt: skip


def row(job_id: str) -> Job:
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None
        session.expunge(job)
        return job


def events(job_id: str, kind: str) -> list[dict]:
    with get_engine().connect() as conn:
        return [
            r[0]
            for r in conn.execute(
                sa.text("select data from trace_events where job_id = :j and kind = :k "
                        "order by seq"),
                {"j": job_id, "k": kind},
            )
        ]  # fmt: skip


def test_a_death_with_other_jobs_in_flight_is_not_charged(two_jobs):
    a, b = two_jobs
    claim(a, f"{W1}:1")
    claim(b, f"{W1}:2")
    expire(a, b)
    again = claim(a, f"{W2}:1")
    assert again.outcome == "claimed" and again.attempt == 2 and again.charged == 1
    job = row(a)
    assert (job.crowd_deaths, job.lone_deaths, job.died_on) == (1, 0, W1)
    [death] = events(a, "worker_lost")
    assert death["counted_as"] == "crowd" and death["in_flight_with"] == [b]
    # b's crowd-mate was claimed again already: it is still counted, through died_on.
    assert claim(b, f"{W2}:2").charged == 1
    assert events(b, "worker_lost")[0]["in_flight_with"] == [a]


def test_a_job_that_ended_before_the_worker_died_is_not_in_its_crowd(two_jobs):
    a, b = two_jobs
    claim(a, f"{W1}:1")
    token = claim(b, f"{W1}:2").token
    with session_scope() as session:
        job = lease.locked_for_run(session, b, token)
        assert job is not None
        lease.finish(session=session, job=job, status=jobs.JobStatus.succeeded,
                    settings=get_settings())  # fmt: skip
    expire(a)
    assert claim(a, f"{W2}:1").charged == 2  # alone: charged
    assert (row(a).crowd_deaths, row(a).lone_deaths) == (0, 1)


def die_together(a: str, b: str, worker: str) -> None:
    """Both jobs claimed on ``worker`` (a death found at a claim counts), then it dies."""
    assert claim(a, f"{worker}:1").outcome == "claimed"
    assert claim(b, f"{worker}:2").outcome == "claimed"
    expire(a, b)


def test_after_its_crowd_deaths_a_job_runs_only_alone(two_jobs):
    a, b = two_jobs
    die_together(a, b, W1)
    die_together(a, b, W2)
    assert claim(a, "host-c:300:b3:1").outcome == "quarantine"  # its second crowd death
    job = row(a)
    assert job.crowd_deaths == 2 and job.quarantined_at is not None
    assert events(a, "quarantined") == [{"crowd_deaths": 2}]
    alone = claim(a, "quarantine-host:1:q:1", isolated=True)
    assert alone.outcome == "claimed" and alone.quarantined and alone.charged == 1


def test_a_poison_job_is_failed_after_its_isolated_deaths_in_quarantine(two_jobs):
    a, b = two_jobs
    die_together(a, b, W1)
    die_together(a, b, W2)
    assert claim(a, "host-c:300:b3:1").outcome == "quarantine"
    max_attempts = get_settings().worker.max_attempts
    for i in range(max_attempts):  # every run alone kills its worker
        got = claim(a, f"q:{i}:boot:1", isolated=True)
        assert got.outcome == "claimed", got
        expire(a)
    assert claim(a, "q:last:boot:1", isolated=True).outcome == "exhausted"
    job = row(a)
    assert job.status == "failed"
    assert (job.crowd_deaths, job.lone_deaths) == (2, max_attempts)
    assert job.error is not None and "in quarantine, one job at a time" in job.error
    assert f"gave up after {2 + max_attempts} attempts" in job.error
    assert len(events(a, "worker_lost")) == 2 + max_attempts  # each death once


def test_the_ceiling_bounds_a_job_that_keeps_dying_in_crowds(two_jobs, monkeypatch):
    monkeypatch.setattr(get_settings().worker, "crowd_deaths_before_quarantine", 0)
    a, b = two_jobs
    ceiling = get_settings().worker.max_runs
    for i in range(ceiling):
        assert claim(a, f"w{i}:1:b:1").outcome == "claimed"
        claim(b, f"w{i}:1:b:2")
        expire(a, b)
    assert claim(a, "last:1:b:1").outcome == "exhausted"
    job = row(a)
    assert job.crowd_deaths == ceiling and "worker.max_runs" in (job.error or "")


def test_a_preempted_run_gives_its_job_back_at_once_without_an_attempt(two_jobs, isolated_broker):
    a, _ = two_jobs
    got = claim(a, f"{W1}:1")
    isolated_broker.flushdb()
    with session_scope() as session:
        job = lease.locked_for_run(session, a, got.token)
        assert job is not None
        lease.release_preempted(session=session, job=job, worker=W1)
    job = row(a)
    assert job.status == "queued" and job.attempts == 0
    assert job.lease_expires_at is None and job.lease_owner is None
    assert queued_messages(isolated_broker) == 1  # sent again at once, not left to a reconciler
    assert events(a, "preempted") == [{"worker": W1}]
    assert claim(a, f"{W2}:1").attempt == 1


def test_the_test_poison_hook_is_refused_in_production():
    with pytest.raises(ValidationError, match="test_poison_marker is a test hook"):
        Settings(
            environment="production",
            notify={"webhook_allow_hosts": []},
            worker={"test_poison_marker": "POISON"},
        )


def test_a_run_ceiling_below_the_poison_path_is_refused():
    with pytest.raises(ValidationError, match="max_runs must be at least"):
        WorkerSettings(crowd_deaths_before_quarantine=2, max_attempts=3, max_runs=4)
