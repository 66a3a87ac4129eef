"""A slow webhook receiver costs a bounded time: each attempt ends at its deadline whatever the
receiver's pace, and a receiver's deliveries in flight are capped so that it cannot hold every
delivery worker. The slow receiver is a real socket server on 127.0.0.1 that answers its
status line at once, then its headers one byte every 5 s (a "slowloris" response: each read
gets a byte well within httpx's per-read timeout)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlmodel import select

from ponder.cli.devservers import WebhookReceiver
from ponder.config import Settings, get_settings
from ponder.db import session_scope
from ponder.models import DeliveryAttempt, Notification
from ponder.notify import outbox
from tests.conftest import ISOLATED_BROKER

DEADLINE_S = 2.0
JOB = {"task": "math_answer", "document": "What is 2 + 2?", "strategy": "single"}
TRICKLE_EVERY_S = 5.0
TRICKLE_FOR_S = 40.0


class SlowReceiver:
    """Answers every request with ``HTTP/1.1 200 OK`` and then one byte of a header every
    ``TRICKLE_EVERY_S`` seconds, for up to ``TRICKLE_FOR_S`` seconds."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._server.getsockname()[1])
        self._stop = threading.Event()
        self.connections = 0
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/slow"

    def start(self) -> SlowReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._server.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.settimeout(2)
                conn.recv(65536)  # the request; its content is not needed
                conn.sendall(b"HTTP/1.1 200 OK\r\n")
                ends = time.monotonic() + TRICKLE_FOR_S
                while time.monotonic() < ends and not self._stop.wait(TRICKLE_EVERY_S):
                    conn.sendall(b"x")
            except OSError:
                return  # the client gave up: what the deadline is for


@pytest.fixture
def slow_receiver() -> Iterator[SlowReceiver]:
    receiver = SlowReceiver().start()
    yield receiver
    receiver.stop()


def ended_job_notification(api: Any, tenant: Any, url: str) -> str:
    """A job ended by cancelling it, which writes its webhook outbox row (and sends it)."""
    response = api.post("/v1/jobs", json={**JOB, "webhook_url": url}, headers=tenant.headers)
    assert response.status_code == 201, response.text
    job_id = response.json()["id"]
    assert api.post(f"/v1/jobs/{job_id}/cancel", headers=tenant.headers).status_code == 200
    with session_scope() as session:
        row = session.exec(select(Notification).where(Notification.job_id == job_id)).one()
        return row.id


def with_deadline(settings: Settings, seconds: float) -> Settings:
    notify = settings.notify.model_copy(update={"webhook_attempt_deadline_s": seconds})
    return settings.model_copy(update={"notify": notify})


def test_a_slow_receiver_costs_at_most_the_deadline_per_attempt(
    api: Any, tenant: Any, isolated_broker: redis.Redis, slow_receiver: SlowReceiver
) -> None:
    notification_id = ended_job_notification(api, tenant, slow_receiver.url)
    settings = with_deadline(get_settings(), DEADLINE_S)

    started = time.monotonic()
    with session_scope() as session:
        result = outbox.deliver(session=session, notification_id=notification_id, settings=settings)
    wall_s = time.monotonic() - started

    assert result.status == "pending" and result.retry_in_s is not None  # retried on schedule
    with session_scope() as session:
        (attempt,) = session.exec(
            select(DeliveryAttempt).where(DeliveryAttempt.notification_id == notification_id)
        ).all()
        row = session.get(Notification, notification_id)
        assert row is not None
        assert row.attempts == 1 and row.status == "pending" and row.next_attempt_at is not None
    assert attempt.status_code is None
    assert attempt.error is not None and attempt.error.startswith("deadline: no response within 2s")
    assert DEADLINE_S * 1000 - 100 <= attempt.duration_ms <= DEADLINE_S * 1000 + 500
    assert wall_s <= DEADLINE_S + 1.0


@pytest.fixture
def io_worker(isolated_broker: redis.Redis, tmp_path: Path) -> Iterator[Path]:
    """A notify-only worker (it never loads the engine) with two threads, a 2 s deadline and
    one delivery in flight per receiver, on a broker no other worker listens on."""
    from ponder.cli.localrun import start_worker, stop

    log_path = tmp_path / "io-worker.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed below
    env = {
        "PONDER_BROKER__URL": ISOLATED_BROKER,
        "PONDER_NOTIFY__WEBHOOK_ATTEMPT_DEADLINE_S": str(DEADLINE_S),
        "PONDER_NOTIFY__WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT": "1",
    }
    proc = start_worker(env, log, queues="notify", concurrency=2, name="slow-io")
    ready_by = time.monotonic() + 90
    while b"ready." not in log_path.read_bytes():
        assert proc.poll() is None and time.monotonic() < ready_by, log_path.read_text()
        time.sleep(0.3)
    yield log_path
    stop(proc)
    log.close()


def test_a_slow_receiver_does_not_delay_another_receivers_delivery(
    api: Any,
    tenant: Any,
    io_worker: Path,
    slow_receiver: SlowReceiver,
    webhook_receiver: WebhookReceiver,
) -> None:
    """Six deliveries to the slow receiver are queued ahead of one to a healthy receiver, with
    two delivery threads. The healthy one is delivered within the bound ``DEADLINE_S + 2 s``
    of being queued: the slow receiver holds one thread at a time, for at most the deadline."""
    slow = [ended_job_notification(api, tenant, slow_receiver.url) for _ in range(6)]
    queued = time.monotonic()
    fast = ended_job_notification(api, tenant, webhook_receiver.url)

    bound_s = DEADLINE_S + 2.0
    while time.monotonic() - queued < bound_s + 30:
        with session_scope() as session:
            row = session.get(Notification, fast)
            assert row is not None
            if row.status == "delivered":
                break
        time.sleep(0.1)
    waited_s = time.monotonic() - queued

    assert row.status == "delivered", f"not delivered after {waited_s:.1f}s"
    assert waited_s <= bound_s, f"delivered after {waited_s:.1f}s, bound {bound_s:.1f}s"
    assert len(webhook_receiver.received) == 1
    with session_scope() as session:
        for notification_id in slow:
            row = session.get(Notification, notification_id)
            assert row is not None and row.status == "pending"  # deferred or retried, not lost
