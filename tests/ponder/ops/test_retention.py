"""The retention purge (ponder/ops/retention.py) with the clock moved forward: content blanked
after the tenant's retention, counts kept, legal holds honoured, bounded batches."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from ponder.config import get_settings
from ponder.db import get_engine, session_scope
from ponder.models import Job, utcnow
from ponder.ops.retention import purge_all_expired
from tests.content import canary, end_with_content, submit, where_found

LATER = timedelta(days=31)  # past the default retention of 30 days


def _finished(api, tenant, mark: str | None = None) -> str:
    mark = mark or canary()
    job_id = submit(api, tenant.headers, mark)
    end_with_content(job_id, mark)
    return job_id


def _job(job_id: str) -> Job:
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None
        session.expunge(job)
        return job


def test_after_its_retention_a_jobs_content_is_purged_and_its_counts_kept(
    api, tenant, isolated_broker
):
    mark = canary()
    job_id = _finished(api, tenant, mark)
    purge_all_expired(settings=get_settings(), now=utcnow() + LATER)
    assert where_found(mark) == []
    job = _job(job_id)
    assert job.purged_at is not None and job.status == "succeeded"
    assert (job.prompt_tokens, job.completion_tokens) == (120, 40)
    with get_engine().connect() as conn:
        verdicts = conn.execute(
            sa.text(
                "select v.verifier, v.passed from verdicts v join candidates c "
                "on c.id = v.candidate_id where c.job_id = :j"
            ),
            {"j": job_id},
        ).all()
    assert verdicts == [("schema", True)]


def test_nothing_is_purged_before_the_retention_runs_out(api, tenant, isolated_broker):
    mark = canary()
    job_id = _finished(api, tenant, mark)
    purge_all_expired(settings=get_settings(), now=utcnow() + timedelta(days=29))
    assert "jobs.document" in where_found(mark) and _job(job_id).purged_at is None


def test_a_tenants_own_retention_overrides_the_default(api, tenant, isolated_broker):
    mark = canary()
    _finished(api, tenant, mark)
    with get_engine().begin() as conn:
        conn.execute(
            sa.text("update tenants set retention_days = 90 where id = :t"), {"t": tenant.tenant_id}
        )
    purge_all_expired(settings=get_settings(), now=utcnow() + LATER)
    assert "jobs.document" in where_found(mark)


def test_a_running_job_is_never_purged(api, tenant, isolated_broker):
    mark = canary()
    submit(api, tenant.headers, mark)  # queued: no end, no retention clock
    purge_all_expired(settings=get_settings(), now=utcnow() + timedelta(days=3650))
    assert "jobs.document" in where_found(mark)


def test_a_legal_hold_on_a_job_survives_the_purge(api, tenant, isolated_broker):
    mark = canary()
    job_id = _finished(api, tenant, mark)
    assert api.post(f"/v1/jobs/{job_id}/legal-hold", headers=tenant.headers).status_code == 200
    purge_all_expired(settings=get_settings(), now=utcnow() + LATER)
    assert "jobs.document" in where_found(mark) and _job(job_id).purged_at is None


def test_the_purge_runs_in_bounded_batches(api, tenant, isolated_broker, monkeypatch):
    monkeypatch.setenv("PONDER_RETENTION__BATCH_SIZE", "2")
    get_settings.cache_clear()
    try:
        jobs = [_finished(api, tenant) for _ in range(5)]
        report = purge_all_expired(settings=get_settings(), now=utcnow() + LATER)
    finally:
        get_settings.cache_clear()
    assert report.purged == 5 and report.transactions == 3
    assert all(_job(j).purged_at is not None for j in jobs)


def _totals(api, headers) -> dict[str, float]:
    """Every sample of the Prometheus text, summed by metric name (gauges of states aside)."""
    text = api.get("/metrics", headers=headers).text
    totals: dict[str, float] = {}
    for line in text.splitlines():
        match = re.match(r"^(ponder_[a-z_]+?)(?:_total)?(?:\{[^}]*\})? ([0-9.e+-]+)$", line)
        if match and not match.group(1).startswith(("ponder_queue_depth", "ponder_alert")):
            totals[match.group(1)] = totals.get(match.group(1), 0.0) + float(match.group(2))
    return totals


@pytest.mark.usefixtures("isolated_broker")
def test_metrics_totals_do_not_drop_after_the_purge(api, tenant):
    _finished(api, tenant)
    before = _totals(api, tenant.headers)
    assert before["ponder_tokens"] >= 160 and before["ponder_verdicts"] >= 1
    assert before["ponder_escalations"] >= 1
    purge_all_expired(settings=get_settings(), now=utcnow() + LATER)
    assert _totals(api, tenant.headers) == before
