"""Worker churn never fails an innocent job: a poison job among innocents is convicted alone,
in quarantine, and a worker given SIGTERM hands its jobs back at once, attempts unchanged."""

from __future__ import annotations

import signal
import time

import pytest
import sqlalchemy as sa

from ponder import config
from ponder.db import get_engine, session_scope
from ponder.jobs.reconcile import reconcile
from tests.faults.test_engine_outage import MAX_TOKENS, SEED, N, wait_for_round_1
from tests.faults.test_engine_outage import NOTE as REFINE_NOTE
from tests.faults.test_worker_faults import ENDED, NOTE, assert_one_signed_delivery, job_row

pytestmark = [pytest.mark.faults, pytest.mark.e2e]

POISON = "POISON-PILL-FOR-TESTS"
INNOCENTS = 15


def query(sql: str, **params: object) -> list[sa.Row]:
    with get_engine().connect() as conn:
        return list(conn.execute(sa.text(sql), params).all())


def test_a_poison_job_among_innocents_is_convicted_alone_and_fails_no_innocent(
    api, tenant, workers, webhook_receiver, monkeypatch
):
    # The reconciler (run here, as beat would) re-sends a queued job left behind by a dead
    # worker's prefetch after 10 s rather than 120 s.
    monkeypatch.setenv("PONDER_WORKER__REQUEUE_AFTER_S", "10")
    config.get_settings.cache_clear()
    poison_env = {"PONDER_WORKER__TEST_POISON_MARKER": POISON}
    body = {
        "task": "medrec_extraction",
        "strategy": "best_of_n",
        "n": 4,
        "webhook_url": webhook_receiver.url,
    }
    ids = []
    for i in range(INNOCENTS + 1):
        document = f"{NOTE} {POISON}" if i == INNOCENTS // 2 else f"Visit {i}. {NOTE}"
        response = api.post("/v1/jobs", json={**body, "document": document}, headers=tenant.headers)
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])
    poison = ids[INNOCENTS // 2]
    innocents = [j for j in ids if j != poison]

    # One worker runs all 16 at once; the test is the supervisor that restarts what died.
    reasoning = workers.start(concurrency=16, **poison_env)
    quarantine = workers.start(quarantine=True, **poison_env)
    deaths = {"reasoning": 0, "quarantine": 0}
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        statuses = dict(query("select id, status from jobs where id = any(:ids)", ids=ids))
        if all(s in ENDED for s in statuses.values()):
            break
        if reasoning.poll() is not None:  # type: ignore[attr-defined]
            deaths["reasoning"] += 1
            reasoning = workers.start(concurrency=16, **poison_env)
        if quarantine.poll() is not None:  # type: ignore[attr-defined]
            deaths["quarantine"] += 1
            quarantine = workers.start(quarantine=True, **poison_env)
        with session_scope() as session:
            reconcile(session=session, settings=config.get_settings())
        time.sleep(0.5)
    else:
        raise TimeoutError(f"not every job ended: {statuses}")

    rows = {r.id: r for r in query("select * from jobs where id = any(:ids)", ids=ids)}
    assert [
        rows[j].status for j in innocents if rows[j].status not in {"succeeded", "needs_review"}
    ] == []
    convicted = rows[poison]
    max_attempts = config.get_settings().worker.max_attempts
    assert convicted.status == "failed"
    assert convicted.lone_deaths == max_attempts, convicted.error
    assert "gave up after" in convicted.error and "in quarantine" in convicted.error
    assert convicted.quarantined_at is not None and convicted.crowd_deaths >= 1
    assert deaths["quarantine"] >= max_attempts - 1  # the last one may be found after the loop
    # Each death in the trace, with the jobs in flight with it; each quarantine run.
    kinds = [
        k
        for (k,) in query("select kind from trace_events where job_id = :j order by seq", j=poison)
    ]
    assert kinds.count("worker_lost") == convicted.crowd_deaths + convicted.lone_deaths
    assert kinds.count("quarantine_run") == max_attempts
    crowd = [
        d
        for (d,) in query(
            "select data from trace_events where job_id = :j and "
            "kind = 'worker_lost' and data->>'counted_as' = 'crowd'",
            j=poison,
        )
    ]
    assert crowd and all(set(d["in_flight_with"]) <= set(innocents) for d in crowd)
    assert any(d["in_flight_with"] for d in crowd)
    # Exactly once: one outcome and one notification per job; one failure notification.
    [(selections, notes)] = query(
        "select (select count(*) from trace_events where job_id = any(:ids) and kind = "
        "'selection'), (select count(*) from notifications where job_id = any(:ids))",
        ids=ids,
    )
    assert (selections, notes) == (INNOCENTS, INNOCENTS + 1)
    assert_one_signed_delivery(webhook_receiver, tenant, poison, "failed")


def test_sigterm_hands_jobs_back_at_once_and_another_worker_completes_them_once(
    api, tenant, workers, webhook_receiver, monkeypatch
):
    monkeypatch.setenv("PONDER_LIMITS__MAX_TOKENS_PER_SAMPLE", str(MAX_TOKENS))  # frozen on job
    config.get_settings.cache_clear()
    grace_s = 4.0
    lease_ttl_s = float(config.get_settings().worker.lease_ttl_s)
    first = workers.start(PONDER_WORKER__SHUTDOWN_GRACE_S=str(grace_s))
    body = {
        "task": "medrec_extraction",
        "document": REFINE_NOTE,
        "strategy": "refine",
        "n": N,
        "seed": SEED,
        "params": {"max_rounds": 2},
        "webhook_url": webhook_receiver.url,
    }
    response = api.post("/v1/jobs", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    job_id = response.json()["id"]
    wait_for_round_1(job_id)  # round 2 is being generated
    assert job_row(job_id)["attempts"] == 1

    first.send_signal(signal.SIGTERM)  # type: ignore[attr-defined]
    sent = time.monotonic()
    while True:
        row = job_row(job_id)
        if row["status"] == "queued":
            break
        assert row["status"] == "running", row["status"]
        assert time.monotonic() - sent < grace_s, "the lease was not released within the grace"
        time.sleep(0.05)
    released_after = time.monotonic() - sent
    # Released, not expired: no lease left, the attempt not counted, before the TTL.
    assert row["lease_expires_at"] is None and row["lease_owner"] is None
    assert row["attempts"] == 0 and released_after < lease_ttl_s
    first.wait(timeout=60)  # type: ignore[attr-defined]

    workers.start()  # picks up the message the release sent; no reconciler needed
    deadline = time.monotonic() + 300
    while (row := job_row(job_id))["status"] not in ENDED:
        assert time.monotonic() < deadline, "the second worker did not complete the job"
        time.sleep(0.5)
    assert row["status"] in {"succeeded", "needs_review"}, row["error"]
    assert row["attempts"] == 1  # the preempted run was not counted
    events = query(
        "select kind, attempt, data from trace_events where job_id = :j order by seq", j=job_id
    )
    kinds = [e.kind for e in events]
    assert kinds.count("preempted") == 1 and kinds.count("selection") == 1
    assert kinds.count("started") == 2
    reused = [e.data for e in events if e.kind == "reused"]
    assert {"step": "round-1", "candidates": N} in reused, "round 1 was generated again"
    by_step = dict(
        query("select step, count(*) from candidates where job_id = :j group by step", j=job_id)
    )
    assert by_step["round-1"] == N  # not generated twice
    [(notes,)] = query("select count(*) from notifications where job_id = :j", j=job_id)
    assert notes == 1
    assert_one_signed_delivery(webhook_receiver, tenant, job_id, row["status"])
    print(
        f"lease released {released_after:.2f}s after SIGTERM (grace {grace_s}s, TTL "
        f"{lease_ttl_s:.0f}s)"
    )
