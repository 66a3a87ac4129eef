"""The metric rollups (migration 0008, ponder/ops/rollups.py) equal a full recount of the rows
after a mix of runs, a crashed run that was retried, deliveries, reviews and a purge; batch
item counts kept on the batch equal a count of its items."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from ponder.config import get_settings
from ponder.db import get_engine, session_scope
from ponder.engines.base import GenerationResult
from ponder.jobs import lease
from ponder.jobs import service as jobs
from ponder.jobs.service import JobRequest, frozen_config
from ponder.jobs.trace import PostgresRecorder
from ponder.models import (
    Batch,
    DeliveryAttempt,
    Job,
    JobStatus,
    Notification,
    Review,
    Tenant,
    utcnow,
)
from ponder.ops.metrics import LATENCY_BUCKETS
from ponder.ops.retention import purge_all_expired
from ponder.ops.rollups import compact, read_totals
from ponder.strategies.verification import ScoredCandidate
from ponder.verify import Verdict as VerdictValue
from tasks.registry import TASKS

TASK = "medrec_extraction"

# What the scans of /metrics read before the rollups: the truth the rollups must equal.
RECOUNT = {
    "jobs": "select array[status, task], count(*) from jobs group by 1",
    "tokens": (
        "select array[k.kind, j.task], sum(case k.kind when 'prompt' then prompt_tokens "
        "when 'completion' then completion_tokens when 'thinking' then thinking_tokens "
        "else cached_tokens end) from jobs j cross join "
        "unnest(array['prompt', 'completion', 'thinking', 'cached']) k(kind) group by 1"
    ),
    "cost": "select array[task], sum(coalesce(cost, 0)) from jobs group by 1",
    "latency_count": "select array[task], count(*) from jobs where finished_at is not null "
    "group by 1",
    "latency_sum": "select array[task], sum(extract(epoch from finished_at - created_at)) "
    "from jobs where finished_at is not null group by 1",
    "verdicts": "select array[verifier, passed::text], count(*) from verdicts group by 1",
    "escalations": "select array[]::text[], count(*) from trace_events where kind = 'escalate'",
    "deliveries": (
        "select array[n.channel, case when a.status_code between 200 and 299 then 'success' "
        "when a.status_code is null and a.error is null then 'success' else 'failure' end], "
        "count(*) from delivery_attempts a join notifications n on n.id = a.notification_id "
        "group by 1"
    ),
    "reviews": "select array[j.task, r.decision, r.was_sampled::text], count(*) from reviews r "
    "join jobs j on j.id = r.job_id group by 1",
}


def recount() -> dict[str, dict[tuple[str, ...], float]]:
    found: dict[str, dict[tuple[str, ...], float]] = {}
    with get_engine().connect() as conn:
        for metric, sql in RECOUNT.items():
            rows = conn.execute(sa.text(sql)).all()
            found[metric] = {tuple(labels): float(n) for labels, n in rows if n}
    return found


def rolled_up(*, fold: bool) -> dict[str, dict[tuple[str, ...], float]]:
    with get_engine().begin() as conn:
        if fold:
            assert compact(conn)
        totals = read_totals(conn)
    got = {m: {k: v for k, v in totals.get(m, {}).items() if v} for m in RECOUNT}
    latency = totals.get("latency", {})
    got["latency_count"] = {}
    for (task, _le), n in latency.items():
        got["latency_count"][(task,)] = got["latency_count"].get((task,), 0) + n
    got["latency_count"] = {k: v for k, v in got["latency_count"].items() if v}
    got["escalations"] = {(): totals.get("escalations", {}).get((), 0.0)}
    got["escalations"] = {k: v for k, v in got["escalations"].items() if v}
    return got


def assert_equal(rollup: dict, truth: dict) -> None:
    for metric in RECOUNT:
        assert rollup[metric].keys() == truth[metric].keys(), metric
        for labels, value in truth[metric].items():
            assert rollup[metric][labels] == pytest.approx(value, rel=1e-9), (metric, labels)


def _submit(tenant_id: str) -> str:
    with session_scope() as session:
        tenant = session.get(Tenant, tenant_id)
        job, _ = jobs.submit(
            session=session,
            tenant=tenant,
            # A document of its own: an identical job would be answered from the result cache.
            request=JobRequest(task=TASK, document=f"Aspirin 81 mg daily. {uuid.uuid4()}"),
            idempotency_key=None,
            settings=get_settings(),
        )
        return job.id


def _config() -> dict[str, Any]:
    request = JobRequest(task=TASK, document="Aspirin 81 mg daily.")
    return frozen_config(request, get_settings(), "rollups")


def _claim(job_id: str) -> lease.Claim:
    with session_scope() as session:
        got = lease.claim(session=session, job_id=job_id, owner="test:1:1", settings=get_settings())
    assert got.outcome == "claimed", got
    return got


def _generation(n: int) -> tuple[GenerationResult, list[ScoredCandidate]]:
    now = time.time()
    result = GenerationResult(
        samples=[], prompt_tokens=100, cached_prompt_tokens=10, engine_wall_s=0.5,
        model="test", started_at=now, finished_at=now,
    )  # fmt: skip
    candidates = [
        ScoredCandidate(
            step="sample",
            idx=i,
            text="{}",
            parsed=None,
            mean_logprob=-0.1,
            min_logprob=-1.0,
            completion_tokens=20,
            finish_reason="stop",
            verdicts=[
                VerdictValue("schema", i % 2 == 0, 1.0, True, 1.0, []),
                VerdictValue("evidence", True, 1.0, False, 1.0, []),
            ],
        )  # fmt: skip
        for i in range(n)
    ]
    return result, candidates


def _run(job_id: str, claim: lease.Claim, *, escalate: bool, reuse: bool = False) -> None:
    recorder = PostgresRecorder(
        job_id=job_id, token=claim.token, attempt=claim.attempt, task=TASKS[TASK],
        settings=get_settings(),
    )  # fmt: skip
    result, candidates = _generation(3)
    if reuse:
        # A retried run reuses the step its crashed run recorded; and a save whose first try
        # landed before the connection dropped writes nothing the second time.
        assert recorder.load_step("sample") is not None
        with session_scope() as session:
            recorder._save_step(session, "sample", result, candidates, retrying=True)
    else:
        recorder.save_step("sample", result, candidates)
        recorder.charge(result)
    recorder.event("start", {"n": 3})
    if escalate:
        recorder.event("escalate", {"n": 6})


def _finish(job_id: str, claim: lease.Claim, status: JobStatus) -> None:
    with session_scope() as session:
        job = lease.locked_for_run(session, job_id, claim.token)
        assert job is not None
        lease.finish(session=session, job=job, status=status, settings=get_settings(),
                    result={"medications": []})  # fmt: skip


def _deliveries(job_id: str) -> None:
    with session_scope() as session:
        note = Notification(
            job_id=job_id, tenant_id=session.get(Job, job_id).tenant_id, channel="webhook",
            target="https://example.org/hook", event_type="job.ended", message_id=f"m-{job_id}",
            payload={"id": job_id}, status="delivered",
        )  # fmt: skip
        session.add(note)
        session.flush()
        session.add(DeliveryAttempt(notification_id=note.id, attempt=1, status_code=503))
        session.add(DeliveryAttempt(notification_id=note.id, attempt=2, status_code=200))


def test_rollups_equal_a_full_recount_after_runs_a_crash_deliveries_reviews_and_a_purge(
    tenant, isolated_broker
):
    ended = []
    for i, status in enumerate([JobStatus.succeeded, JobStatus.needs_review, JobStatus.failed]):
        job_id = _submit(tenant.tenant_id)
        claim = _claim(job_id)
        _run(job_id, claim, escalate=i == 0)
        _finish(job_id, claim, status)
        ended.append(job_id)
    # A run that crashed after recording its step: its lease runs out, the next run claims
    # the job (the death is counted), reuses the step and ends it.
    crashed = _submit(tenant.tenant_id)
    first = _claim(crashed)
    _run(crashed, first, escalate=True)
    with get_engine().begin() as conn:
        conn.execute(
            sa.text("update jobs set lease_expires_at = now() - interval '1 minute' where id = :j"),
            {"j": crashed},
        )
    second = _claim(crashed)
    assert second.attempt == 2
    _run(crashed, second, escalate=False, reuse=True)
    _finish(crashed, second, JobStatus.succeeded)
    _submit(tenant.tenant_id)  # still queued
    cancelled = _submit(tenant.tenant_id)
    with session_scope() as session:
        jobs.cancel(session=session, tenant=session.get(Tenant, tenant.tenant_id),
                    job_id=cancelled, settings=get_settings())  # fmt: skip
    _deliveries(ended[0])
    with session_scope() as session:
        session.add(Review(job_id=ended[1], tenant_id=tenant.tenant_id, decision="approved"))
    truth = recount()
    assert truth["verdicts"][("schema", "true")] == 4 * 2  # the crashed run's verdicts once
    assert truth["escalations"] == {(): 2}
    assert_equal(rolled_up(fold=False), truth)  # deltas not folded yet
    assert_equal(rolled_up(fold=True), truth)

    purge_all_expired(settings=get_settings(), now=utcnow() + timedelta(days=31))
    assert_equal(rolled_up(fold=True), truth)  # the purge blanks content, counts stay
    assert recount() == truth


def test_latency_buckets_in_sql_match_the_histogram_bounds(database):
    with get_engine().connect() as conn:
        for bound in LATENCY_BUCKETS:
            at, above = conn.execute(
                sa.text(
                    "select ponder_latency_le(cast(:s as numeric)), "
                    "ponder_latency_le(cast(:s as numeric) + 0.001)"
                ),
                {"s": bound},
            ).one()
            assert float(at) == bound
            assert above == "+Inf" if bound == LATENCY_BUCKETS[-1] else float(above) > bound


def _batch_of(tenant_id: str, items: int) -> tuple[str, list[str]]:
    """A batch of ``items`` queued jobs: its id and its items' ids."""
    with session_scope() as session:
        batch = Batch(tenant_id=tenant_id, item_count=items)
        session.add(batch)
        session.flush()
        batch_id = batch.id
        session.execute(
            sa.insert(Job),
            [
                Job(
                    tenant_id=tenant_id, task=TASK, request_hash="h",
                    config=_config(), document=f"note {uuid.uuid4()}", batch_id=batch_id,
                    batch_index=i, custom_id=str(i),
                ).model_dump()
                for i in range(items)
            ],
        )  # fmt: skip
        ids = list(session.execute(sa.select(Job.id).where(Job.batch_id == batch_id)).scalars())
    return batch_id, ids


def test_batch_item_counts_kept_on_the_batch_equal_a_count_of_its_items(tenant, isolated_broker):
    batch_id, ids = _batch_of(tenant.tenant_id, 4)
    claim = _claim(ids[0])
    _finish(ids[0], claim, JobStatus.failed)
    claim = _claim(ids[1])
    with session_scope() as session:
        tenant_row = session.get(Tenant, tenant.tenant_id)
        from ponder.batches.service import cancel_batch

        cancel_batch(session=session, tenant=tenant_row, batch_id=batch_id,
                     settings=get_settings())  # fmt: skip
    _finish(ids[1], claim, JobStatus.succeeded)
    with Session(get_engine()) as session:
        kept = session.get(Batch, batch_id)
        assert kept is not None
        counted = dict(
            session.execute(
                sa.select(Job.status, sa.func.count()).where(Job.batch_id == batch_id)
                .group_by(Job.status)
            ).all()
        )  # fmt: skip
        started = session.execute(
            sa.select(sa.func.min(Job.started_at)).where(Job.batch_id == batch_id)
        ).scalar_one()
    assert {s: n for s, n in kept.item_counts.items() if n} == counted
    assert counted == {"failed": 1, "succeeded": 1, "cancelled": 2}
    assert kept.items_started_at == started


def test_items_ending_concurrently_with_a_batch_cancel_keep_the_counts_right(
    tenant, isolated_broker
):
    from concurrent.futures import ThreadPoolExecutor

    from ponder.batches.service import cancel_batch

    batch_id, ids = _batch_of(tenant.tenant_id, 24)

    def run_item(job_id: str) -> None:
        with session_scope() as session:
            got = lease.claim(session=session, job_id=job_id, owner="t:1:1",
                              settings=get_settings())  # fmt: skip
        if got.outcome == "claimed":
            _finish(job_id, got, JobStatus.succeeded)

    def cancel() -> None:
        with session_scope() as session:
            cancel_batch(session=session, tenant=session.get(Tenant, tenant.tenant_id),
                         batch_id=batch_id, settings=get_settings())  # fmt: skip

    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = [pool.submit(run_item, job_id) for job_id in ids[:12]]
        futures.append(pool.submit(cancel))
        futures += [pool.submit(run_item, job_id) for job_id in ids[12:]]
        for future in futures:
            future.result()  # a deadlock would raise here
    with Session(get_engine()) as session:
        kept = session.get(Batch, batch_id)
        assert kept is not None
        counted = dict(
            session.execute(
                sa.select(Job.status, sa.func.count()).where(Job.batch_id == batch_id)
                .group_by(Job.status)
            ).all()
        )  # fmt: skip
    assert {s: n for s, n in kept.item_counts.items() if n} == counted
    assert sum(counted.values()) == 24 and "running" not in counted
    assert_equal(rolled_up(fold=True), recount())
