"""The batch API without a worker: upload, counts, cancel, results, retry, the report rows."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa

from ponder.batches.service import dispatch
from ponder.batches.state import derive_status
from ponder.config import get_settings
from ponder.db import get_engine, session_scope
from ponder.jobs import lease
from ponder.models import Batch, JobStatus
from tests.conftest import queued_messages

DOC = "Metoprolol 50 mg twice daily."


def item(i: int, **change: Any) -> dict[str, Any]:
    return {"custom_id": f"item-{i}", "task": "medrec_extraction", "document": DOC,
            "strategy": "single", **change}  # fmt: skip


def jsonl(items: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(i).encode() + b"\n" for i in items)


def submit(api: Any, tenant: Any, items: list[dict[str, Any]], **options: Any) -> Any:
    """A JSONL body; with options, a multipart upload with the options as form fields."""
    if options:
        files = {"file": ("items.jsonl", jsonl(items), "application/jsonl")}
        return api.post("/v1/batches", data=options, files=files, headers=tenant.headers)
    return api.post(
        "/v1/batches",
        content=jsonl(items),
        headers={**tenant.headers, "content-type": "application/jsonl"},
    )


def rows(sql: str, **params: Any) -> list[sa.Row]:
    with get_engine().connect() as conn:
        return list(conn.execute(sa.text(sql), params))


def item_ids(batch_id: str) -> list[str]:
    found = rows("select id from jobs where batch_id = :b order by batch_index", b=batch_id)
    return [r.id for r in found]


def end_item(
    job_id: str, status: JobStatus, error: str | None = None, token: int | None = None
) -> None:
    """End an item the way a run does: claim the lease (unless started), finish under it."""
    settings = get_settings()
    token = token or start_item(job_id)
    with session_scope() as session:
        job = lease.locked_for_run(session, job_id, token)
        assert job is not None
        result = None if error else {"output": {"medications": []}, "summary": "ok"}
        lease.finish(session=session, job=job, status=status, result=result, error=error,
                    settings=settings)  # fmt: skip


def start_item(job_id: str) -> int:
    with session_scope() as session:
        claim = lease.claim(session=session, job_id=job_id, owner="test", settings=get_settings())
    assert claim.outcome == "claimed"
    return claim.token


def test_jsonl_upload_creates_one_job_per_line_and_queues_one_dispatch(
    api, tenant, isolated_broker
):
    response = submit(api, tenant, [item(i) for i in range(3)], name="night-1")
    assert response.status_code == 201, response.text
    batch = response.json()
    assert batch["status"] == "queued" and batch["total"] == 3 and not batch["ended"]
    assert batch["counts"]["queued"] == 3 and batch["name"] == "night-1"
    assert batch["priority"] == 7  # after single jobs by default
    found = rows("select custom_id, batch_index, priority from jobs order by batch_index")
    assert [(r.custom_id, r.batch_index, r.priority) for r in found] == [
        ("item-0", 1, 7), ("item-1", 2, 7), ("item-2", 3, 7)
    ]  # fmt: skip
    assert queued_messages(isolated_broker) == 1  # one dispatch message, not one per item


def test_dispatch_sends_every_queued_item_to_the_workers(api, tenant, isolated_broker):
    batch_id = submit(api, tenant, [item(i) for i in range(3)]).json()["id"]
    isolated_broker.flushdb()
    with session_scope() as session:
        assert dispatch(session=session, batch_id=batch_id) == 3
    assert queued_messages(isolated_broker) == 3


def test_multipart_upload_takes_options_as_form_fields(api, tenant, isolated_broker):
    response = api.post(
        "/v1/batches",
        data={
            "name": "upload",
            "priority": "2",
            "email": "ops@example.org",
            "metadata": '{"ticket": "T-1"}',
        },  # fmt: skip
        files={"file": ("items.jsonl", jsonl([item(1), item(2)]), "application/jsonl")},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    batch = response.json()
    assert (batch["name"], batch["priority"], batch["email"]) == ("upload", 2, "ops@example.org")
    assert batch["metadata"] == {"ticket": "T-1"} and batch["total"] == 2


def test_more_items_than_one_insert_chunk_are_all_written(api, tenant, isolated_broker):
    response = submit(api, tenant, [item(i) for i in range(1201)])
    assert response.status_code == 201, response.text
    assert response.json()["total"] == 1201
    assert rows("select max(batch_index) as m from jobs")[0].m == 1201


def test_counts_and_timestamps_follow_the_items(api, tenant, isolated_broker):
    batch_id = submit(api, tenant, [item(i) for i in range(4)]).json()["id"]
    ids = item_ids(batch_id)
    start_item(ids[0])
    end_item(ids[1], JobStatus.succeeded)
    end_item(ids[2], JobStatus.failed, error="engine refused: too long")
    batch = api.get(f"/v1/batches/{batch_id}", headers=tenant.headers).json()
    assert batch["counts"] == {"queued": 1, "running": 1, "succeeded": 1, "needs_review": 0,
                               "failed": 1, "cancelled": 0, "expired": 0,
                               "reviewed": 0}  # fmt: skip
    assert batch["status"] == "running" and batch["started_at"] and not batch["finished_at"]


def test_report_is_written_when_the_last_item_ends(api, tenant, isolated_broker):
    created = submit(api, tenant, [item(1), item(2)], email="ops@example.org").json()
    ids = item_ids(created["id"])
    end_item(ids[0], JobStatus.succeeded)
    assert rows("select id from notifications") == []
    end_item(ids[1], JobStatus.failed, error="engine refused: too long")
    (report,) = rows("select batch_id, channel, event_type, payload from notifications")
    assert (report.batch_id, report.channel) == (created["id"], "email")
    assert report.event_type == "batch.completed_with_failures"
    data = report.payload["data"]
    assert data["counts"]["succeeded"] == 1 and data["counts"]["failed"] == 1
    assert data["failures"][0]["custom_id"] == "item-2"
    assert data["failures"][0]["error"] == "engine refused: too long"
    batch = api.get(f"/v1/batches/{created['id']}", headers=tenant.headers).json()
    assert batch["ended"] and batch["finished_at"] and batch["status"] == "completed_with_failures"


def test_items_of_a_batch_send_no_notifications_of_their_own(api, tenant, isolated_broker):
    batch_id = submit(api, tenant, [item(1), item(2)], email="ops@example.org").json()["id"]
    for job_id in item_ids(batch_id):
        end_item(job_id, JobStatus.succeeded)
    assert [r.job_id for r in rows("select job_id from notifications")] == [None]


def test_cancel_cancels_queued_items_and_lets_running_ones_finish(api, tenant, isolated_broker):
    batch_id = submit(api, tenant, [item(i) for i in range(4)], email="ops@example.org").json()[
        "id"
    ]
    ids = item_ids(batch_id)
    end_item(ids[0], JobStatus.succeeded)
    token = start_item(ids[1])
    cancelled = api.post(f"/v1/batches/{batch_id}/cancel", headers=tenant.headers).json()
    assert cancelled["status"] == "cancelling"
    assert cancelled["counts"]["cancelled"] == 2 and cancelled["counts"]["running"] == 1
    end_item(ids[1], JobStatus.succeeded, token=token)  # the running item finishes
    batch = api.get(f"/v1/batches/{batch_id}", headers=tenant.headers).json()
    assert batch["status"] == "cancelled" and batch["ended"]
    assert batch["counts"]["succeeded"] == 2 and batch["counts"]["cancelled"] == 2
    (report,) = rows("select event_type from notifications")
    assert report.event_type == "batch.cancelled"


def test_cancel_of_an_ended_batch_is_409(api, tenant, isolated_broker):
    batch_id = submit(api, tenant, [item(1)]).json()["id"]
    assert api.post(f"/v1/batches/{batch_id}/cancel", headers=tenant.headers).status_code == 200
    again = api.post(f"/v1/batches/{batch_id}/cancel", headers=tenant.headers)
    assert again.status_code == 409 and "already ended" in again.json()["error"]


def test_results_stream_one_line_per_item_with_a_result_or_an_error(api, tenant, isolated_broker):
    batch_id = submit(api, tenant, [item(i) for i in range(3)]).json()["id"]
    ids = item_ids(batch_id)
    end_item(ids[0], JobStatus.succeeded)
    end_item(ids[1], JobStatus.needs_review)
    end_item(ids[2], JobStatus.failed, error="engine refused: too long")
    response = api.get(f"/v1/batches/{batch_id}/results", headers=tenant.headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/jsonl")
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [line["custom_id"] for line in lines] == ["item-0", "item-1", "item-2"]
    assert [line["status"] for line in lines] == ["succeeded", "needs_review", "failed"]
    assert lines[0]["result"]["summary"] == "ok" and lines[0]["error"] is None
    assert lines[1]["result"] is not None and lines[1]["error"] is None
    assert lines[2]["result"] is None
    assert lines[2]["error"] == {"code": "failed", "message": "engine refused: too long"}


def test_results_of_a_running_batch_are_409_unless_partial(api, tenant, isolated_broker):
    batch_id = submit(api, tenant, [item(1), item(2)]).json()["id"]
    end_item(item_ids(batch_id)[0], JobStatus.succeeded)
    early = api.get(f"/v1/batches/{batch_id}/results", headers=tenant.headers)
    assert early.status_code == 409 and "partial=true" in early.json()["error"]
    partial = api.get(f"/v1/batches/{batch_id}/results?partial=true", headers=tenant.headers)
    assert [json.loads(x)["custom_id"] for x in partial.text.splitlines()] == ["item-1"]
    assert partial.headers["ponder-batch-ended"] == "false"


def test_retry_queues_only_the_failed_items_again(api, tenant, isolated_broker):
    batch_id = submit(api, tenant, [item(i) for i in range(4)], email="ops@example.org").json()[
        "id"
    ]
    ids = item_ids(batch_id)
    end_item(ids[0], JobStatus.succeeded)
    end_item(ids[1], JobStatus.needs_review)
    end_item(ids[2], JobStatus.failed, error="engine refused")
    end_item(ids[3], JobStatus.failed, error="engine refused")
    isolated_broker.flushdb()
    response = api.post(f"/v1/batches/{batch_id}/retry", headers=tenant.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["retried"] == 2
    assert body["batch"]["round"] == 2 and body["batch"]["status"] == "running"
    statuses = {r.id: (r.status, r.attempts) for r in rows("select id, status, attempts from jobs")}
    assert statuses[ids[0]][0] == "succeeded" and statuses[ids[1]][0] == "needs_review"
    assert statuses[ids[2]] == statuses[ids[3]] == ("queued", 0)
    assert queued_messages(isolated_broker) == 1  # the dispatch of the retried items
    end_item(ids[2], JobStatus.succeeded)
    end_item(ids[3], JobStatus.succeeded)
    reports = rows("select event_type, payload from notifications order by created_at")
    assert [r.event_type for r in reports] == [
        "batch.completed_with_failures",
        "batch.needs_review",
    ]
    assert reports[1].payload["data"]["round"] == 2


def test_retry_of_a_running_batch_or_one_without_failures_is_409(api, tenant, isolated_broker):
    batch_id = submit(api, tenant, [item(1)]).json()["id"]
    running = api.post(f"/v1/batches/{batch_id}/retry", headers=tenant.headers)
    assert running.status_code == 409 and "still running" in running.json()["error"]
    end_item(item_ids(batch_id)[0], JobStatus.succeeded)
    clean = api.post(f"/v1/batches/{batch_id}/retry", headers=tenant.headers)
    assert clean.status_code == 409 and "no failed items" in clean.json()["error"]


def test_same_idempotency_key_returns_the_same_batch(api, tenant, isolated_broker):
    headers = {**tenant.headers, "content-type": "application/jsonl", "Idempotency-Key": "b-1"}
    body = jsonl([item(1), item(2)])
    first = api.post("/v1/batches", content=body, headers=headers)
    second = api.post("/v1/batches", content=body, headers=headers)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    assert len(rows("select id from jobs")) == 2 and queued_messages(isolated_broker) == 1
    other = api.post("/v1/batches", content=jsonl([item(3)]), headers=headers)
    assert other.status_code == 409


def test_another_tenants_batch_is_404(api, tenant, other_tenant, isolated_broker):
    batch_id = submit(api, tenant, [item(1)]).json()["id"]
    for method, path in (
        ("get", f"/v1/batches/{batch_id}"),
        ("get", f"/v1/batches/{batch_id}/results"),
        ("get", f"/v1/batches/{batch_id}/deliveries"),
        ("post", f"/v1/batches/{batch_id}/cancel"),
        ("post", f"/v1/batches/{batch_id}/retry"),
    ):
        response = getattr(api, method)(path, headers=other_tenant.headers)
        assert response.status_code == 404, path
    assert api.get("/v1/batches", headers=other_tenant.headers).json()["items"] == []


def test_list_shows_the_newest_batches_first(api, tenant, isolated_broker):
    first = submit(api, tenant, [item(1)]).json()["id"]
    second = submit(api, tenant, [item(1)]).json()["id"]
    listed = api.get("/v1/batches?limit=5", headers=tenant.headers).json()["items"]
    assert [b["id"] for b in listed] == [second, first]


def test_the_batch_list_pages_with_a_cursor_through_every_batch(api, tenant, isolated_broker):
    made = [submit(api, tenant, [item(1)]).json()["id"] for _ in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.get("/v1/batches", params=params, headers=tenant.headers).json()
        assert len(page["items"]) <= 2
        seen += [b["id"] for b in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == made[::-1]  # each batch once, newest first


def test_a_bad_batch_list_cursor_is_422(api, tenant, isolated_broker):
    response = api.get("/v1/batches?cursor=%25%25%25", headers=tenant.headers)
    assert response.status_code == 422
    assert "cursor is not valid" in response.json()["error"]


def _counts(**given: int) -> dict[str, int]:
    return {s.value: given.get(s.value, 0) for s in JobStatus}


@pytest.mark.parametrize(
    ("counts", "cancelled", "expected"),
    [
        (_counts(queued=3), False, "queued"),
        (_counts(queued=2, succeeded=1), False, "running"),
        (_counts(running=1, cancelled=2), True, "cancelling"),
        (_counts(succeeded=3), False, "succeeded"),
        (_counts(succeeded=2, needs_review=1), False, "needs_review"),
        (_counts(succeeded=2, failed=1), False, "completed_with_failures"),
        (_counts(succeeded=2, cancelled=1), False, "completed_with_failures"),
        (_counts(succeeded=1, expired=1), False, "completed_with_failures"),
        (_counts(failed=3), False, "failed"),
        (_counts(succeeded=1, cancelled=2), True, "cancelled"),
    ],
)
def test_an_ended_batch_never_reads_succeeded_when_items_failed(counts, cancelled, expected):
    batch = Batch(tenant_id="t", cancel_requested_at=sa.func.now() if cancelled else None)
    assert derive_status(batch, counts) == expected
