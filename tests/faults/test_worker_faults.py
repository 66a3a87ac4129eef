"""A worker killed mid-job, a poison job alone on its worker, a crash between commit and
enqueue: the outcome in PostgreSQL and at the receivers is exactly-once, and nothing is lost.
Churn with other jobs in flight (a poison among innocents, SIGTERM) is in test_worker_churn.py."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa
from standardwebhooks.webhooks import Webhook

from ponder.config import get_settings
from ponder.db import get_engine, session_scope
from ponder.jobs.reconcile import reconcile
from tests.conftest import wait_for_status
from tests.faults.conftest import IN_PROCESS

pytestmark = [pytest.mark.faults, pytest.mark.e2e]

NOTE = (
    "Medications: metoprolol 50 mg by mouth twice daily; lisinopril 10 mg daily; "
    "atorvastatin 40 mg at bedtime; metformin 500 mg twice daily. Stop aspirin."
)
ENDED = {"succeeded", "needs_review", "failed", "cancelled"}


def job_row(job_id: str) -> dict:
    with get_engine().connect() as conn:
        return dict(
            conn.execute(sa.text("select * from jobs where id = :j"), {"j": job_id})
            .mappings()
            .one()
        )


def wait_running_with_engine_work(job_id: str, timeout_s: float = 120) -> None:
    """Until the run has claimed the job and written its first trace event."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with get_engine().connect() as conn:
            started = conn.execute(
                sa.text("select count(*) from trace_events where job_id = :j and kind = 'started'"),
                {"j": job_id},
            ).scalar_one()
        if started and job_row(job_id)["status"] == "running":
            return
        time.sleep(0.2)
    raise TimeoutError("the job never started running")


def reconcile_until(job_id: str, statuses: set[str], timeout_s: float = 300) -> dict:
    """What beat does every few seconds: re-send jobs whose lease expired."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with session_scope() as session:
            reconcile(session=session, settings=get_settings())
        row = job_row(job_id)
        if row["status"] in statuses:
            return row
        time.sleep(1.0)
    raise TimeoutError(f"job {job_id} did not reach {statuses}")


def submit(api, tenant, webhook_receiver, **extra) -> str:
    body = {
        "task": "medrec_extraction",
        "document": NOTE,
        "strategy": "best_of_n",
        "n": 8,
        "webhook_url": webhook_receiver.url,
        **extra,
    }
    response = api.post("/v1/jobs", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def assert_one_signed_delivery(webhook_receiver, tenant, job_id: str, status: str) -> None:
    time.sleep(2)  # a duplicate would arrive by now
    mine = [r for r in webhook_receiver.received if job_id.encode() in r.body]
    assert len(mine) == 1, [r.headers.get("webhook-id") for r in mine]
    payload = Webhook(tenant.webhook_secret).verify(mine[0].body, mine[0].headers)
    assert payload["data"]["status"] == status


def test_kill_9_during_generation_retries_and_completes_exactly_once(
    api, tenant, workers, webhook_receiver
):
    first = workers.start(**IN_PROCESS)  # killed with its engine inside
    job_id = submit(api, tenant, webhook_receiver)
    wait_running_with_engine_work(job_id)
    workers.kill9(first)
    workers.start()
    row = reconcile_until(job_id, {"succeeded", "needs_review"})
    assert row["attempts"] == 2
    with get_engine().connect() as conn:
        selections = conn.execute(
            sa.text("select count(*) from trace_events where job_id = :j and kind = 'selection'"),
            {"j": job_id},
        ).scalar_one()
        notes = conn.execute(
            sa.text("select count(*) from notifications where job_id = :j"), {"j": job_id}
        ).scalar_one()
    assert selections == 1 and notes == 1
    assert_one_signed_delivery(webhook_receiver, tenant, job_id, row["status"])


def test_a_poison_job_alone_on_its_worker_fails_after_the_attempt_limit(
    api, tenant, workers, webhook_receiver
):
    job_id = submit(api, tenant, webhook_receiver)
    # Alone on its worker each time, each death is charged: max_attempts of them fail it.
    for attempt in (1, 2, 3):  # max_attempts: each delivery kills its worker
        worker = workers.start()
        wait_running_attempt_or_resend(job_id, attempt)
        workers.kill9(worker)
    workers.start()
    row = reconcile_until(job_id, ENDED, timeout_s=120)
    assert row["status"] == "failed"
    assert row["attempts"] == 3
    assert "gave up after 3 attempts" in row["error"]
    assert (row["lone_deaths"], row["crowd_deaths"]) == (3, 0)
    assert_one_signed_delivery(webhook_receiver, tenant, job_id, "failed")


def wait_running_attempt_or_resend(job_id: str, attempt: int, timeout_s: float = 180) -> None:
    """Re-send the job (as beat would) until a live worker has claimed it for ``attempt``
    (the worker may claim it before its start is seen: the message is already waiting)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        row = job_row(job_id)
        if row["status"] == "running" and row["attempts"] == attempt:
            return
        assert row["status"] not in ENDED and row["attempts"] < attempt, row["status"]
        with session_scope() as session:
            reconcile(session=session, settings=get_settings())
        time.sleep(0.3)
    raise TimeoutError(f"no worker claimed the job for attempt {attempt}")


def test_a_job_committed_but_never_enqueued_still_runs_once(api, tenant, workers, monkeypatch):
    import ponder.jobs.service

    # The crash: the row commits, the process dies before the broker hears of it.
    monkeypatch.setattr(ponder.jobs.service, "send_run_job", lambda *a, **k: None)
    body = {"task": "medrec_extraction", "document": NOTE, "strategy": "single"}
    job_id = api.post("/v1/jobs", json=body, headers=tenant.headers).json()["id"]
    monkeypatch.undo()
    workers.start()
    time.sleep(3)
    assert job_row(job_id)["status"] == "queued"  # nothing delivered it
    with get_engine().begin() as conn:  # the reconciler's threshold has passed
        conn.execute(
            sa.text("update jobs set enqueued_at = now() - interval '1 hour' where id = :j"),
            {"j": job_id},
        )
    row = reconcile_until(job_id, ENDED)
    assert row["attempts"] == 1 and row["status"] in {"succeeded", "needs_review"}


def test_phi_canary_never_reaches_logs_or_the_broker(
    api, tenant, workers, webhook_receiver, caplog
):
    import redis

    from tests.conftest import SPARE_BROKER

    canary = "Zebulon Quattlebaum MRN 88417263 DOB 1947-03-09"
    client = redis.Redis.from_url(SPARE_BROKER)
    with caplog.at_level("DEBUG"):
        job_id = submit(api, tenant, webhook_receiver, n=2, document=f"Patient {canary}. {NOTE}")
        # The message waits in the broker (no worker yet): read everything Redis holds.
        broker = [
            value
            for key in client.scan_iter()
            if client.type(key) == b"list"
            for value in client.lrange(key, 0, -1)
        ]
        assert broker  # the job's message is there
        workers.start(**IN_PROCESS)  # vLLM's own logging included
        wait_for_status(job_id, ENDED, timeout_s=300)
        time.sleep(2)
    logs = workers.logs() + caplog.text
    for fragment in ("Quattlebaum", "88417263", "1947-03-09"):
        assert fragment not in logs
        assert all(fragment.encode() not in m for m in broker)
        assert all(fragment.encode() not in r.body for r in webhook_receiver.received)
    assert job_id in logs  # the logs do name the job
