"""A needs_review medrec job from the real worker and engine, corrected through the review
API: the job ends reviewed with its record and diff, its recipients are told (a signed
``job.reviewed`` webhook and an email), and the job returns the corrected answer."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa
from standardwebhooks.webhooks import Webhook

from ponder.config import get_settings
from ponder.db import get_engine
from tests.conftest import wait_for_status
from tests.ponder.reviews.jobs import GOOD, NOTE

pytestmark = pytest.mark.e2e


def wait_until(check, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.2)


def test_a_needs_review_job_corrected_through_the_api_reaches_its_recipients(
    api, tenant, worker, webhook_receiver, smtp_server, monkeypatch
):
    # An answer cut at 16 tokens cannot parse: the real run ends needs_review, every time.
    monkeypatch.setenv("PONDER_LIMITS__MAX_TOKENS_PER_SAMPLE", "16")
    get_settings.cache_clear()
    body = {"task": "medrec_extraction", "document": NOTE, "strategy": "single",
            "webhook_url": webhook_receiver.url, "email": "pharmacist@example.org"}  # fmt: skip
    job_id = api.post("/v1/jobs", json=body, headers=tenant.headers).json()["id"]
    monkeypatch.undo()
    get_settings.cache_clear()
    job = wait_for_status(job_id, {"succeeded", "needs_review", "failed"}, timeout_s=600)
    assert job["status"] == "needs_review", job["error"]
    wait_until(lambda: len(webhook_receiver.received) >= 1)  # job.needs_review first
    before_mail = len(smtp_server.messages)

    response = api.post(
        f"/v1/jobs/{job_id}/review",
        json={"decision": "corrected", "answer": GOOD},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text

    with get_engine().connect() as conn:
        status = conn.execute(
            sa.text("select status from jobs where id = :j"), {"j": job_id}
        ).scalar_one()
        review = conn.execute(
            sa.text("select decision, answer_after, diff from reviews where job_id = :j"),
            {"j": job_id},
        ).one()
    assert status == "reviewed"
    assert review.decision == "corrected" and review.answer_after == GOOD
    assert review.diff == [{"path": "medications", "before": None, "after": GOOD["medications"]}]

    wait_until(lambda: len(webhook_receiver.received) >= 2)
    delivery = webhook_receiver.received[-1]
    payload = Webhook(tenant.webhook_secret).verify(delivery.body, delivery.headers)
    assert payload["type"] == "job.reviewed"
    assert payload["data"]["review"]["provenance"] == "human_reviewed"
    assert NOTE[:30] not in delivery.body.decode()  # no document content
    wait_until(lambda: len(smtp_server.messages) > before_mail)
    mail = smtp_server.messages[-1]
    assert job_id in mail["Subject"] and "was reviewed" in mail["Subject"]

    public = api.get(f"/v1/jobs/{job_id}", headers=tenant.headers).json()
    assert public["answer"] == GOOD and public["provenance"] == "human_reviewed"
    assert public["result"]["output"] is None  # the machine's (unparsed) answer stays
