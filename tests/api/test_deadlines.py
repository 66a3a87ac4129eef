"""``complete_by`` at the API: a time with a timezone is taken on a job (JSON and multipart)
and on a batch (set on every item); a naive or unparseable time is a 422 naming the field,
with nothing written and nothing queued."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa

from ponder.config import get_settings
from ponder.db import get_engine, session_scope
from ponder.jobs.reconcile import reconcile
from ponder.models import JobStatus
from tests.api.test_batches import end_item, item, item_ids, rows, start_item
from tests.api.test_batches import submit as submit_batch
from tests.api.test_batches_bad_input import assert_refused, line
from tests.api.test_batches_bad_input import post as post_batch
from tests.api.test_jobs_bad_input import VALID, assert_nothing_changed

BAD_TIMES = [
    ("2026-12-01T18:00:00", "complete_by: Input should have timezone info"),
    ("tomorrow at noon", "complete_by: Input should be a valid datetime"),
    ("2026-13-45T25:00:00Z", "complete_by"),
    ("", "complete_by"),
]
BAD_IDS = ["naive", "words", "impossible-date", "empty"]


def in_an_hour() -> datetime:
    return (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)


def deadlines_of_jobs() -> list[datetime | None]:
    with get_engine().connect() as conn:
        return list(
            conn.execute(sa.text("select complete_by from jobs order by batch_index")).scalars()
        )


@pytest.mark.parametrize(("value", "phrase"), BAD_TIMES, ids=BAD_IDS)
def test_a_job_with_a_bad_complete_by_is_422_naming_the_field(
    api, tenant, isolated_broker, value, phrase
):
    response = api.post("/v1/jobs", json={**VALID, "complete_by": value}, headers=tenant.headers)
    assert_nothing_changed(response, 422, phrase, isolated_broker)


@pytest.mark.parametrize(("value", "phrase"), BAD_TIMES, ids=BAD_IDS)
def test_a_multipart_job_with_a_bad_complete_by_is_422_naming_the_field(
    api, tenant, isolated_broker, value, phrase
):
    response = api.post(
        "/v1/jobs",
        data={"task": "medrec_extraction", "complete_by": value},
        files={"file": ("note.txt", b"Aspirin 81 mg daily.", "text/plain")},
        headers=tenant.headers,
    )
    assert_nothing_changed(response, 422, "complete_by", isolated_broker)


@pytest.mark.parametrize(("value", "phrase"), BAD_TIMES, ids=BAD_IDS)
def test_a_batch_with_a_bad_complete_by_is_422_naming_the_field(
    api, tenant, isolated_broker, value, phrase
):
    assert_refused(post_batch(api, tenant, line(), complete_by=value), 422, "complete_by",
                   isolated_broker)  # fmt: skip


def test_a_job_keeps_its_deadline_in_any_timezone_and_shows_it(api, tenant, isolated_broker):
    deadline = in_an_hour()
    new_york = deadline.astimezone(timezone(timedelta(hours=-5))).isoformat()
    kolkata = deadline.astimezone(timezone(timedelta(hours=5, minutes=30))).isoformat()
    for sent in (deadline.isoformat().replace("+00:00", "Z"), new_york, kolkata):
        body: dict[str, Any] = {**VALID, "complete_by": sent}
        response = api.post("/v1/jobs", json=body, headers=tenant.headers)
        assert response.status_code == 201, response.text
        assert datetime.fromisoformat(response.json()["complete_by"]) == deadline
    assert deadlines_of_jobs() == [deadline] * 3


def test_a_deadline_already_past_is_accepted_and_the_job_queued(api, tenant, isolated_broker):
    # Refusing it would be a race with the clock; the claim ends the job expired instead.
    past = datetime.now(UTC) - timedelta(minutes=5)
    response = api.post(
        "/v1/jobs", json={**VALID, "complete_by": past.isoformat()}, headers=tenant.headers
    )
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "queued"


def test_a_batch_window_is_every_items_deadline(api, tenant, isolated_broker):
    deadline = in_an_hour()
    response = post_batch(
        api, tenant, line() + line(custom_id="b"), complete_by=deadline.isoformat()
    )
    assert response.status_code == 201, response.text
    assert datetime.fromisoformat(response.json()["complete_by"]) == deadline
    assert deadlines_of_jobs() == [deadline, deadline]


def test_a_batch_line_cannot_carry_its_own_deadline(api, tenant, isolated_broker):
    # The window is the batch's; a line's own would silently differ from what the batch says.
    body = line(complete_by=in_an_hour().isoformat())
    assert_refused(post_batch(api, tenant, body), 422, "complete_by", isolated_broker)


def test_a_batch_past_its_window_ends_expired_with_the_results_that_completed(
    api, tenant, isolated_broker
):
    window = in_an_hour().isoformat()
    # Different documents: an identical one would be answered from the result cache.
    items = [item(i, document=f"Metoprolol {i + 1}0 mg daily.") for i in range(3)]
    created = submit_batch(api, tenant, items, email="ops@example.org", complete_by=window).json()
    done, running, waiting = item_ids(created["id"])
    end_item(done, JobStatus.succeeded)
    token = start_item(running)
    with get_engine().begin() as conn:  # the window passes
        for table in ("jobs", "batches"):
            conn.execute(sa.text(f"update {table} set complete_by = now() - interval '1 second'"))
    with session_scope() as session:
        assert reconcile(session=session, settings=get_settings()).expired_jobs == 1
    # The running item stops at its next engine call and ends with what it has.
    end_item(running, JobStatus.needs_review, token=token)
    batch = api.get(f"/v1/batches/{created['id']}", headers=tenant.headers).json()
    assert batch["status"] == "expired" and batch["ended"]
    assert {k: v for k, v in batch["counts"].items() if v} == {
        "succeeded": 1, "needs_review": 1, "expired": 1}  # fmt: skip
    results = api.get(f"/v1/batches/{created['id']}/results", headers=tenant.headers)
    lines = [json.loads(x) for x in results.text.splitlines()]
    assert [line["status"] for line in lines] == ["succeeded", "needs_review", "expired"]
    assert lines[0]["result"]["summary"] == "ok" and lines[1]["result"] is not None
    assert lines[2]["result"] is None and lines[2]["error"]["code"] == "expired"
    assert "deadline" in lines[2]["error"]["message"]
    (report,) = rows("select event_type, payload from notifications")  # the batch's, only
    assert report.event_type == "batch.expired"
    assert report.payload["data"]["counts"]["expired"] == 1
