"""Webhook delivery end to end without the engine: the API, PostgreSQL, a real Celery worker
on the notify queue (a subprocess) and a real HTTP receiver. A job is ended by cancelling it,
which writes its outbox rows like any other ending."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from standardwebhooks.webhooks import Webhook

from ponder import config, queue
from ponder.cli.devservers import ReceivedRequest, WebhookReceiver
from ponder.db import get_engine
from tests.conftest import SPARE_BROKER

NOTIFY_BROKER = SPARE_BROKER
JOB = {"task": "medrec_extraction", "document": "Aspirin 81 mg daily.", "strategy": "single"}


@pytest.fixture(scope="module")
def notify_worker(database: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A real Celery worker on the notify and default queues only: it never loads the engine."""
    from ponder.cli.localrun import start_worker, stop

    redis.Redis.from_url(NOTIFY_BROKER).flushdb()
    log_path = tmp_path_factory.mktemp("notify-worker") / "worker.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed below
    env = {"PONDER_BROKER__URL": NOTIFY_BROKER}
    proc = start_worker(env, log, queues="notify,default", concurrency=2, name="notify")
    deadline = time.monotonic() + 60
    while b"ready." not in log_path.read_bytes():
        assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.3)
    yield log_path
    stop(proc)
    log.close()
    redis.Redis.from_url(NOTIFY_BROKER).flushdb()


@pytest.fixture
def broker(notify_worker: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PONDER_BROKER__URL", NOTIFY_BROKER)
    config.get_settings.cache_clear()
    queue.celery_app.cache_clear()
    yield
    monkeypatch.undo()
    config.get_settings.cache_clear()
    queue.celery_app.cache_clear()


def scripted(*answers: int | tuple[int, dict[str, str]]) -> Callable[[ReceivedRequest], Any]:
    """Answer the requests in turn with ``answers``, then 200."""
    remaining = list(answers)
    return lambda request: remaining.pop(0) if remaining else 200


def wait_until(predicate: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def register(api: Any, tenant: Any, url: str, **body: Any) -> dict[str, Any]:
    response = api.post("/v1/webhooks", json={"url": url, **body}, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return response.json()


def end_job(api: Any, tenant: Any, **body: Any) -> str:
    job_id = api.post("/v1/jobs", json={**JOB, **body}, headers=tenant.headers).json()["id"]
    assert api.post(f"/v1/jobs/{job_id}/cancel", headers=tenant.headers).status_code == 200
    return job_id


def deliveries(api: Any, tenant: Any, job_id: str) -> list[dict[str, Any]]:
    response = api.get(f"/v1/jobs/{job_id}/deliveries", headers=tenant.headers)
    assert response.status_code == 200
    return response.json()


def settled(api: Any, tenant: Any, job_id: str) -> dict[str, Any]:
    """The job's single webhook delivery, once it is no longer pending."""
    wait_until(lambda: deliveries(api, tenant, job_id)[0]["status"] != "pending")
    (delivery,) = deliveries(api, tenant, job_id)
    return delivery


def test_500_500_200_is_three_signed_attempts_with_one_webhook_id(api, tenant, broker):
    receiver = WebhookReceiver(responder=scripted(500, 500)).start()
    try:
        endpoint = register(api, tenant, receiver.url)
        job_id = end_job(api, tenant, webhook_endpoint_id=endpoint["id"])
        delivery = settled(api, tenant, job_id)
    finally:
        receiver.stop()
    assert len(receiver.received) == 3
    assert {r.headers["webhook-id"] for r in receiver.received} == {delivery["webhook_id"]}
    for request in receiver.received:
        payload = Webhook(endpoint["secret"]).verify(request.body, request.headers)
        assert payload["data"]["job_id"] == job_id and payload["type"] == "job.cancelled"
    assert delivery["status"] == "delivered"
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 500, 200]
    assert [a["attempt"] for a in delivery["attempts"]] == [1, 2, 3]


def test_410_disables_the_endpoint_and_later_messages_are_not_sent(api, tenant, broker):
    receiver = WebhookReceiver(responder=scripted(410)).start()
    try:
        endpoint = register(api, tenant, receiver.url)
        first = settled(api, tenant, end_job(api, tenant, webhook_endpoint_id=endpoint["id"]))
        listed = api.get(f"/v1/webhooks/{endpoint['id']}", headers=tenant.headers).json()
        # A job submitted before the endpoint was disabled, ending after.
        set_disabled_at("null")
        body = {**JOB, "webhook_endpoint_id": endpoint["id"]}
        job_id = api.post("/v1/jobs", json=body, headers=tenant.headers).json()["id"]
        set_disabled_at("now()")
        api.post(f"/v1/jobs/{job_id}/cancel", headers=tenant.headers)
        second = settled(api, tenant, job_id)
    finally:
        receiver.stop()
    assert first["status"] == "disabled"
    assert [a["status_code"] for a in first["attempts"]] == [410]
    assert listed["disabled_at"] and "410" in listed["disabled_reason"]
    assert second["status"] == "disabled" and second["attempts"] == []
    assert len(receiver.received) == 1


def test_a_redirect_is_not_followed_and_the_delivery_is_retried(api, tenant, broker):
    receiver = WebhookReceiver(responder=scripted((302, {"location": "/elsewhere"}))).start()
    try:
        endpoint = register(api, tenant, receiver.url)
        delivery = settled(api, tenant, end_job(api, tenant, webhook_endpoint_id=endpoint["id"]))
    finally:
        receiver.stop()
    assert [a["status_code"] for a in delivery["attempts"]] == [302, 200]
    assert "redirects are not followed" in delivery["attempts"][0]["error"]
    assert [r.path for r in receiver.received] == ["/hook", "/hook"]


def test_retry_after_on_429_is_honoured(api, tenant, broker):
    receiver = WebhookReceiver(responder=scripted((429, {"retry-after": "2"}))).start()
    try:
        endpoint = register(api, tenant, receiver.url)
        delivery = settled(api, tenant, end_job(api, tenant, webhook_endpoint_id=endpoint["id"]))
    finally:
        receiver.stop()
    first, second = delivery["attempts"]
    assert (first["status_code"], second["status_code"]) == (429, 200)
    gap = _seconds_between(first["created_at"], second["created_at"])
    assert gap >= 1.9  # the schedule alone would have waited 0.3 s


def test_a_delivery_fails_when_the_schedule_is_used_up(api, tenant, broker):
    receiver = WebhookReceiver(responder=lambda request: 503).start()
    try:
        endpoint = register(api, tenant, receiver.url)
        delivery = settled(api, tenant, end_job(api, tenant, webhook_endpoint_id=endpoint["id"]))
    finally:
        receiver.stop()
    assert delivery["status"] == "failed"
    assert [a["status_code"] for a in delivery["attempts"]] == [503] * 4  # 1 + 3 retries
    assert delivery["last_error"] == "HTTP 503"


def test_redeliver_sends_the_same_webhook_id_again_and_records_it(api, tenant, broker):
    receiver = WebhookReceiver().start()
    try:
        endpoint = register(api, tenant, receiver.url)
        job_id = end_job(api, tenant, webhook_endpoint_id=endpoint["id"])
        delivery = settled(api, tenant, job_id)
        replay = api.post(f"/v1/deliveries/{delivery['id']}/redeliver", headers=tenant.headers)
        assert replay.status_code == 200 and replay.json()["status"] == "pending"
        wait_until(lambda: len(receiver.received) == 2)
        replayed = settled(api, tenant, job_id)
    finally:
        receiver.stop()
    assert [r.headers["webhook-id"] for r in receiver.received] == [delivery["webhook_id"]] * 2
    for request in receiver.received:
        Webhook(endpoint["secret"]).verify(request.body, request.headers)
    assert [a["status_code"] for a in replayed["attempts"]] == [200, 200]


def test_another_tenants_delivery_cannot_be_replayed(api, tenant, other_tenant, broker):
    receiver = WebhookReceiver().start()
    try:
        job_id = end_job(api, tenant, webhook_url=receiver.url)
        delivery = settled(api, tenant, job_id)
    finally:
        receiver.stop()
    response = api.post(f"/v1/deliveries/{delivery['id']}/redeliver", headers=other_tenant.headers)
    assert response.status_code == 404
    assert api.get(f"/v1/jobs/{job_id}/deliveries", headers=other_tenant.headers).status_code == 404


def test_during_rotation_both_secrets_verify(api, tenant, broker):
    receiver = WebhookReceiver().start()
    try:
        endpoint = register(api, tenant, receiver.url)
        rotated = api.post(f"/v1/webhooks/{endpoint['id']}/rotate", headers=tenant.headers).json()
        settled(api, tenant, end_job(api, tenant, webhook_endpoint_id=endpoint["id"]))
    finally:
        receiver.stop()
    (request,) = receiver.received
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    Webhook(endpoint["secret"]).verify(request.body, request.headers)
    Webhook(rotated["secret"]).verify(request.body, request.headers)


def test_job_webhook_url_is_signed_with_the_tenant_secret(api, tenant, broker):
    receiver = WebhookReceiver().start()
    try:
        settled(api, tenant, end_job(api, tenant, webhook_url=receiver.url))
    finally:
        receiver.stop()
    (request,) = receiver.received
    Webhook(tenant.webhook_secret).verify(request.body, request.headers)


def test_document_content_is_sent_only_where_the_tenant_opted_in(api, tenant, broker):
    receiver = WebhookReceiver().start()
    try:
        plain = register(api, tenant, receiver.url)
        opted = register(api, tenant, receiver.url.replace("/hook", "/full"), include_content=True)
        for endpoint in (plain, opted):
            settled(api, tenant, end_job(api, tenant, webhook_endpoint_id=endpoint["id"]))
    finally:
        receiver.stop()
    by_path = {r.path: json.loads(r.body)["data"] for r in receiver.received}
    assert "document" not in by_path["/hook"] and JOB["document"] not in json.dumps(
        by_path["/hook"]
    )
    assert by_path["/full"]["document"] == JOB["document"]


def test_a_batch_report_is_delivered_signed_with_its_counts(api, tenant, broker):
    receiver = WebhookReceiver().start()
    try:
        endpoint = register(api, tenant, receiver.url)
        body = b"".join(
            json.dumps({"custom_id": f"c{i}", **JOB}).encode() + b"\n" for i in range(3)
        )
        options = {"webhook_endpoint_id": endpoint["id"]}
        files = {"file": ("items.jsonl", body, "application/jsonl")}
        batch = api.post("/v1/batches", data=options, files=files, headers=tenant.headers).json()
        api.post(f"/v1/batches/{batch['id']}/cancel", headers=tenant.headers)
        wait_until(lambda: len(receiver.received) == 1)
    finally:
        receiver.stop()
    (request,) = receiver.received
    payload = Webhook(endpoint["secret"]).verify(request.body, request.headers)
    assert payload["type"] == "batch.cancelled"
    assert payload["data"]["batch_id"] == batch["id"] and payload["data"]["total"] == 3
    assert payload["data"]["counts"]["cancelled"] == 3
    (delivery,) = api.get(f"/v1/batches/{batch['id']}/deliveries", headers=tenant.headers).json()
    assert delivery["webhook_id"] == request.headers["webhook-id"]


def set_disabled_at(value: str) -> None:
    with get_engine().begin() as conn:
        conn.execute(sa.text(f"update webhook_endpoints set disabled_at = {value}"))


def _seconds_between(first: str, second: str) -> float:
    from datetime import datetime

    return (datetime.fromisoformat(second) - datetime.fromisoformat(first)).total_seconds()
