"""End to end: the API, a real Celery worker with the real vLLM engine on CPU, PostgreSQL,
a real webhook receiver and a real SMTP server."""

from __future__ import annotations

import json
import time

import httpx
import pytest
import sqlalchemy as sa
from standardwebhooks.webhooks import Webhook

from ponder.db import get_engine
from tests.conftest import wait_for_status

pytestmark = pytest.mark.e2e

NOTE = """Clinic follow-up.
Medications: metoprolol 50 mg by mouth twice daily; lisinopril 10 mg by mouth daily.
Stop aspirin 81 mg daily because of bruising."""
ENDED = {"succeeded", "needs_review", "failed", "cancelled"}


def rows(sql: str, **params: object) -> list[sa.Row]:
    with get_engine().connect() as conn:
        return list(conn.execute(sa.text(sql), params))


def wait_until(predicate, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.3)


def test_medrec_best_of_4_is_verified_traced_and_notified(
    api, tenant, worker, webhook_receiver, smtp_server
):
    before_mail = len(smtp_server.messages)
    response = api.post(
        "/v1/jobs",
        json={
            "task": "medrec_extraction",
            "document": NOTE,
            "strategy": "best_of_n",
            "n": 4,
            "webhook_url": webhook_receiver.url,
            "email": "pharmacist@example.org",
        },
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    job_id = response.json()["id"]
    job = wait_for_status(job_id, ENDED, timeout_s=600)
    assert job["status"] in {"succeeded", "needs_review"}, job["error"]

    candidates = rows(
        "select id, step, completion_tokens from candidates where job_id = :j", j=job_id
    )
    assert len(candidates) == 4
    assert {c.step for c in candidates} == {"sample"}
    assert all(c.completion_tokens > 0 for c in candidates)
    expected_verifiers = set(job["config"]["verifiers"])
    for c in candidates:
        names = {
            r.verifier
            for r in rows("select verifier from verdicts where candidate_id = :c", c=c.id)
        }
        assert names == expected_verifiers

    trace = api.get(f"/v1/jobs/{job_id}/trace", headers=tenant.headers).json()
    selection = trace["selection"]
    assert selection["rule"] == "passed_required > score > mean_logprob"
    assert len(selection["ranking"]) == 4
    assert [s["kind"] for s in trace["steps"]] == ["started", "samples", "selection"]
    samples_step = trace["steps"][1]["data"]
    assert samples_step["n"] == 4  # one engine request for all four samples
    selected = [c for c in trace["candidates"] if c["selected"]]
    assert len(selected) == 1
    assert selected[0]["id"] == selection["ranking"][0]["candidate_id"]
    if job["status"] == "succeeded":
        assert selected[0]["passed_required"]
    else:
        assert not any(c["passed_required"] for c in trace["candidates"])
        assert job["result"]["failing_checks"]
    assert job["prompt_tokens"] > 0 and job["completion_tokens"] == sum(
        c.completion_tokens for c in candidates
    )

    wait_until(lambda: len(webhook_receiver.received) >= 1)
    wait_until(lambda: len(smtp_server.messages) > before_mail)
    time.sleep(2)  # a duplicate delivery would arrive now
    assert len(webhook_receiver.received) == 1
    delivery = webhook_receiver.received[0]
    payload = Webhook(tenant.webhook_secret).verify(delivery.body, delivery.headers)
    assert payload["data"]["job_id"] == job_id
    assert payload["data"]["status"] == job["status"]
    assert NOTE[:30] not in delivery.body.decode()  # no document content
    mails = [m for m in smtp_server.messages[before_mail:] if job_id in m["Subject"]]
    assert len(mails) == 1
    attempts = rows(
        "select d.status_code from delivery_attempts d join notifications n "
        "on n.id = d.notification_id where n.job_id = :j and n.channel = 'webhook'",
        j=job_id,
    )
    assert [a.status_code for a in attempts] == [200]


def test_same_idempotency_key_runs_the_engine_once(api, tenant, worker):
    headers = {**tenant.headers, "Idempotency-Key": "e2e-once"}
    body = {"task": "medrec_extraction", "document": NOTE, "strategy": "single"}
    first = api.post("/v1/jobs", json=body, headers=headers).json()
    second = api.post("/v1/jobs", json=body, headers=headers).json()
    assert first["id"] == second["id"]
    job = wait_for_status(first["id"], ENDED)
    third = api.post("/v1/jobs", json=body, headers=headers).json()
    assert third["id"] == first["id"] and third["status"] == job["status"]
    time.sleep(2)
    assert job["attempts"] == 1
    samples = rows(
        "select count(*) as n from trace_events where job_id = :j and kind = 'samples'",
        j=first["id"],
    )
    assert samples[0].n == 1
    assert len(rows("select id from candidates where job_id = :j", j=first["id"])) == 1
    assert len(rows("select id from jobs")) == 1


def test_jobs_submitted_together_share_the_engine_batch(api, tenant, worker):
    body = {"task": "medrec_extraction", "document": NOTE, "strategy": "best_of_n", "n": 2}
    ids = [api.post("/v1/jobs", json=body, headers=tenant.headers).json()["id"] for _ in range(3)]
    for job_id in ids:
        wait_for_status(job_id, ENDED)
    windows = []
    for job_id in ids:
        trace = api.get(f"/v1/jobs/{job_id}/trace", headers=tenant.headers).json()
        step = next(s["data"] for s in trace["steps"] if s["kind"] == "samples")
        windows.append((step["engine_started_at"], step["engine_finished_at"]))
    # Every pair of engine windows overlaps: the jobs were decoded in the same batch.
    for a in windows:
        for b in windows:
            assert a[0] < b[1] and b[0] < a[1]
    assert json.dumps(windows)


def test_metrics_count_the_finished_job_with_its_tokens_and_latency(api, tenant, worker):
    body = {"task": "medrec_extraction", "document": NOTE, "strategy": "single"}
    job_id = api.post("/v1/jobs", json=body, headers=tenant.headers).json()["id"]
    job = wait_for_status(job_id, ENDED)
    text = api.get("/metrics", headers=tenant.headers).text
    lines = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert lines[f'ponder_jobs{{status="{job["status"]}",task="medrec_extraction"}}'] >= 1
    completion = lines['ponder_tokens_total{kind="completion",task="medrec_extraction"}']
    assert completion >= job["completion_tokens"] > 0
    assert lines['ponder_job_latency_seconds_count{task="medrec_extraction"}'] >= 1
    assert lines['ponder_job_latency_seconds_sum{task="medrec_extraction"}'] > 0
    assert lines['ponder_job_latency_seconds_bucket{le="+Inf",task="medrec_extraction"}'] >= 1
    assert 'ponder_queue_depth{queue="reasoning"}' in lines
    assert any(k.startswith("ponder_verdicts_total{") for k in lines)


def test_worker_metrics_show_its_engine_took_requests(api, tenant, worker):
    from tests.conftest import WORKER_METRICS_PORT

    body = {"task": "medrec_extraction", "document": NOTE, "strategy": "single"}
    wait_for_status(api.post("/v1/jobs", json=body, headers=tenant.headers).json()["id"], ENDED)
    text = httpx.get(f"http://127.0.0.1:{WORKER_METRICS_PORT}/metrics").text
    peak = next(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("ponder_engine_requests_peak ")
    )
    assert peak >= 1
    assert "ponder_engine_requests_in_flight 0.0" in text


def test_cancelling_a_running_job_aborts_its_engine_call(api, tenant, worker):
    # A long free-text thinking call (up to 1024 tokens: tens of seconds on CPU) is in flight
    # when the caller cancels; the run's heartbeat (2 s in tests) aborts it in the engine.
    body = {"task": "medrec_extraction", "document": NOTE, "strategy": "extended_reasoning",
            "n": 1, "params": {"thinking_tokens": 1024}}  # fmt: skip
    response = api.post("/v1/jobs", json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    job_id = response.json()["id"]
    deadline = time.monotonic() + 300
    while not _has_event(job_id, "started"):
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.2)
    time.sleep(3)  # the think call is decoding
    cancelled_at = time.monotonic()
    assert api.post(f"/v1/jobs/{job_id}/cancel", headers=tenant.headers).status_code == 200
    job = wait_for_status(job_id, ENDED, timeout_s=300)
    took = time.monotonic() - cancelled_at
    assert job["status"] == "cancelled"
    assert took < 12, f"cancelled {took:.1f} s after the request: the engine call ran on"
    # The call in flight was cut and not charged: the think call, or, when the model ended its
    # thinking early, the answer call (then only the thinking tokens were charged).
    assert job["completion_tokens"] == job["thinking_tokens"]
    assert f"job {job_id}: 1 engine request(s) aborted in flight" in worker.read_text()


def _has_event(job_id: str, kind: str) -> bool:
    with get_engine().connect() as conn:
        found = conn.execute(
            sa.text("select count(*) from trace_events where job_id = :j and kind = :k"),
            {"j": job_id, "k": kind},
        ).scalar_one()
    return bool(found)
