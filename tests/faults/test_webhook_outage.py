"""A webhook receiver down for a while, then back, through a real worker: deliveries resume
on the retry schedule with the same ``webhook-id``, each arrives once, none is dropped."""

from __future__ import annotations

import json
import time

import pytest
import sqlalchemy as sa
from standardwebhooks.webhooks import Webhook

from ponder.cli.devservers import WebhookReceiver, free_port
from ponder.db import get_engine
from tests.faults.test_worker_faults import NOTE

pytestmark = [pytest.mark.faults, pytest.mark.e2e]

SCHEDULE_S = [2.0, 3.0, 10.0, 30.0]
"""Two quick retries that fail while the receiver is down, then time to start it; the last
entry is never used."""
JITTER = 0.2  # the setting's default
LATE_S = 3.0
"""Allowed lateness of an attempt past its jittered delay (a loaded 2-core machine)."""
JOBS = 3


def notifications(job_ids: list[str]) -> list[dict]:
    with get_engine().connect() as conn:
        rows = conn.execute(
            sa.text("select * from notifications where job_id = any(:j) order by job_id"),
            {"j": job_ids},
        ).mappings()
        return [dict(r) for r in rows]


def attempts_of(notification_id: str) -> list[dict]:
    with get_engine().connect() as conn:
        rows = conn.execute(
            sa.text("select * from delivery_attempts where notification_id = :n order by attempt"),
            {"n": notification_id},
        ).mappings()
        return [dict(r) for r in rows]


def bring_receivers_back(
    job_ids: list[str], ports: list[int], receivers: dict[str, WebhookReceiver]
) -> None:
    """Start each job's receiver once its notification has failed three times (the jobs end
    seconds apart: each has its own receiver, so each outage ends at the same point)."""
    deadline = time.monotonic() + 300
    while len(receivers) < len(job_ids):
        for row in notifications(job_ids):
            if row["job_id"] not in receivers and row["attempts"] >= 3:
                assert row["attempts"] == 3, "the receiver came back too late"
                port = ports[job_ids.index(row["job_id"])]
                receivers[row["job_id"]] = WebhookReceiver(port=port).start()
        assert time.monotonic() < deadline, "the deliveries did not fail three times"
        time.sleep(0.1)


def wait_delivered(job_ids: list[str], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not all(r["status"] == "delivered" for r in notifications(job_ids)):
        assert time.monotonic() < deadline, [
            (r["status"], r["attempts"]) for r in notifications(job_ids)
        ]
        time.sleep(0.3)


def test_a_receiver_down_then_back_gets_every_delivery_once_on_schedule(api, tenant, workers):
    ports: list[int] = []
    while len(ports) < JOBS:  # nothing listens on them yet: every attempt is refused
        if (port := free_port()) not in ports:
            ports.append(port)
    workers.start(PONDER_NOTIFY__WEBHOOK_RETRY_SCHEDULE_S=json.dumps(SCHEDULE_S))
    body = {"task": "medrec_extraction", "document": NOTE, "strategy": "single"}
    job_ids = [
        api.post(
            "/v1/jobs",
            json={**body, "webhook_url": f"http://127.0.0.1:{port}/hook"},
            headers=tenant.headers,
        ).json()["id"]
        for port in ports
    ]
    receivers: dict[str, WebhookReceiver] = {}
    try:
        bring_receivers_back(job_ids, ports, receivers)
        wait_delivered(job_ids, timeout_s=SCHEDULE_S[2] * (1 + JITTER) + 30)
        time.sleep(2)  # a duplicate would arrive by now
    finally:
        for receiver in receivers.values():
            receiver.stop()

    rows = {r["job_id"]: r for r in notifications(job_ids)}
    assert len(rows) == JOBS
    for job_id, receiver in receivers.items():
        row = rows[job_id]
        assert row["status"] == "delivered" and row["attempts"] == 4
        assert len(receiver.received) == 1  # none dropped, none twice
        got = receiver.received[0]
        assert got.headers.get("webhook-id") == row["message_id"]  # as on every earlier try
        payload = Webhook(tenant.webhook_secret).verify(got.body, got.headers)
        assert payload["data"]["job_id"] == job_id
        tries = attempts_of(row["id"])
        assert [t["attempt"] for t in tries] == [1, 2, 3, 4]
        assert [t["status_code"] for t in tries] == [None, None, None, 200]
        assert all(t["error"] for t in tries[:3]) and tries[3]["error"] is None
        for before, after, delay in zip(tries, tries[1:], SCHEDULE_S, strict=False):
            gap = (after["created_at"] - before["created_at"]).total_seconds()
            assert delay * (1 - JITTER) - 0.1 <= gap <= delay * (1 + JITTER) + LATE_S, (
                before["attempt"],
                gap,
            )
