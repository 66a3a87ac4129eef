"""Batches end to end: the API, a real Celery worker with the real vLLM engine on CPU (n=1,
short documents), PostgreSQL and a real SMTP server for the batch reports."""

from __future__ import annotations

import json
import time
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from ponder import config
from ponder.cli.devservers import SmtpSink
from ponder.db import get_engine

pytestmark = pytest.mark.e2e

DRUGS = ["metoprolol 50 mg twice daily", "lisinopril 10 mg daily", "aspirin 81 mg daily",
         "atorvastatin 20 mg at night", "metformin 500 mg twice daily"]  # fmt: skip
# Far past the model's 4096-token context: the engine refuses it at once, so the item fails.
TOO_LONG = "Patient takes metoprolol 50 mg by mouth twice daily. " * 600


def note(i: int) -> str:
    return f"Clinic note {i}. Medications: {DRUGS[i % len(DRUGS)]}."


def items(count: int, *, failing: set[int] | None = None) -> bytes:
    lines = [
        {"custom_id": f"note-{i:03d}", "task": "medrec_extraction", "strategy": "single",
         "document": TOO_LONG if i in (failing or ()) else note(i)}
        for i in range(count)
    ]  # fmt: skip
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def submit(api: Any, tenant: Any, body: bytes, **options: Any) -> dict[str, Any]:
    """Options go in form fields next to the file, never the query string."""
    files = {"file": ("items.jsonl", body, "application/jsonl")}
    response = api.post("/v1/batches", data=options, files=files, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return response.json()


def wait_for(api: Any, tenant: Any, batch_id: str, predicate: Any, timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        batch = api.get(f"/v1/batches/{batch_id}", headers=tenant.headers).json()
        if predicate(batch):
            return batch
        assert time.monotonic() < deadline, f"batch {batch_id} stuck at {batch['counts']}"
        time.sleep(1.0)


def reports(smtp: SmtpSink, batch_id: str, timeout_s: float = 60) -> list[Message]:
    deadline = time.monotonic() + timeout_s
    while not (found := [m for m in smtp.messages if batch_id in _text(m)]):
        assert time.monotonic() < deadline, "no batch report email"
        time.sleep(0.3)
    return found


def _text(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode()
    return ""


def started_events(job_ids: list[str]) -> dict[str, int]:
    with get_engine().connect() as conn:
        rows = conn.execute(
            sa.text("select job_id, count(*) as n from trace_events where kind = 'started' "
                    "and job_id = any(:ids) group by job_id"),
            {"ids": job_ids},
        )  # fmt: skip
        return {r.job_id: r.n for r in rows}


@pytest.mark.timeout(1800)
def test_a_100_item_batch_ends_with_correct_counts_and_retry_reruns_only_the_failed(
    api, tenant, worker, smtp_server, monkeypatch
):
    from ponder.config import get_settings

    failing = {7, 31, 58, 77, 99}
    # This test is about counts, results and retry, not answers: 48-token answers (frozen on
    # each item at upload; truncated ones end needs_review) keep 95 engine runs short.
    monkeypatch.setenv("PONDER_LIMITS__MAX_TOKENS_PER_SAMPLE", "48")
    get_settings.cache_clear()
    batch = submit(api, tenant, items(100, failing=failing), email="ops@example.org")
    monkeypatch.undo()
    get_settings.cache_clear()
    ended = wait_for(api, tenant, batch["id"], lambda b: b["ended"], timeout_s=1500)
    counts = ended["counts"]
    assert ended["total"] == 100 and counts["failed"] == 5
    assert counts["succeeded"] + counts["needs_review"] == 95
    assert counts["queued"] == counts["running"] == counts["cancelled"] == 0
    assert ended["status"] == "completed_with_failures"

    response = api.get(f"/v1/batches/{batch['id']}/results", headers=tenant.headers)
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert len(lines) == 100
    by_id = {line["custom_id"]: line for line in lines}
    assert set(by_id) == {f"note-{i:03d}" for i in range(100)}
    for i in range(100):
        line = by_id[f"note-{i:03d}"]
        if i in failing:
            assert line["result"] is None and "document too long" in line["error"]["message"]
        else:
            assert line["error"] is None and line["result"]["summary"]
            assert line["status"] == "needs_review" or line["result"]["output"] is not None

    (report,) = reports(smtp_server, batch["id"])
    text = _text(report)
    assert f"succeeded:    {counts['succeeded']}" in text and "failed:       5" in text
    assert all(f"note-{i:03d}" in text for i in failing)

    ids = {line["custom_id"]: line["job_id"] for line in lines}
    retried = api.post(f"/v1/batches/{batch['id']}/retry", headers=tenant.headers).json()
    assert retried["retried"] == 5
    again = wait_for(api, tenant, batch["id"], lambda b: b["ended"], timeout_s=300)
    assert again["round"] == 2 and again["counts"] == counts  # the same five fail again
    runs = started_events(list(ids.values()))
    assert {c for c, j in ids.items() if runs[j] == 2} == {f"note-{i:03d}" for i in failing}
    assert all(runs[j] == 1 for c, j in ids.items() if int(c[-3:]) not in failing)
    assert len(reports(smtp_server, batch["id"])) == 2


@pytest.mark.timeout(900)
def test_cancel_mid_batch_keeps_finished_results_and_cancels_the_rest(
    api, tenant, worker, monkeypatch
):
    from ponder.config import get_settings

    # About cancelling, not answers: 48-token answers (frozen on each item at upload).
    monkeypatch.setenv("PONDER_LIMITS__MAX_TOKENS_PER_SAMPLE", "48")
    get_settings.cache_clear()
    batch = submit(api, tenant, items(40))
    monkeypatch.undo()
    get_settings.cache_clear()
    wait_for(api, tenant, batch["id"], lambda b: _ended_count(b) >= 3, timeout_s=600)
    cancelling = api.post(f"/v1/batches/{batch['id']}/cancel", headers=tenant.headers).json()
    finished_before = _ended_count(cancelling) - cancelling["counts"]["cancelled"]
    ended = wait_for(api, tenant, batch["id"], lambda b: b["ended"], timeout_s=300)
    counts = ended["counts"]
    assert ended["status"] == "cancelled"
    assert counts["cancelled"] > 0 and counts["queued"] == counts["running"] == 0
    answered = counts["succeeded"] + counts["needs_review"]
    # Items running at the cancel finished with their answer instead of being cut off.
    assert answered == finished_before + cancelling["counts"]["running"]
    lines = [
        json.loads(line)
        for line in api.get(
            f"/v1/batches/{batch['id']}/results", headers=tenant.headers
        ).text.splitlines()
    ]
    assert len(lines) == 40
    assert sum(1 for x in lines if x["result"] is not None) == answered
    assert all(x["error"]["code"] == "cancelled" for x in lines if x["result"] is None)


def _ended_count(batch: dict[str, Any]) -> int:
    return batch["total"] - batch["counts"]["queued"] - batch["counts"]["running"]


@pytest.mark.timeout(900)
def test_a_nightly_run_submits_inbox_files_once_and_emails_the_report(
    api, tenant, worker, smtp_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from worker.tasks import nightly_run_task

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    run = {"name": "clinic-e2e", "cron": "0 2 * * *", "tenant": "tenant-a", "inbox": str(inbox),
           "task": "medrec_extraction", "strategy": "single", "min_age_s": 0,
           "email": "pharmacy@example.org"}  # fmt: skip
    monkeypatch.setenv("PONDER_NIGHTLY", json.dumps([run]))
    config.get_settings.cache_clear()
    try:
        for i in range(3):
            (inbox / f"note-{i}.txt").write_text(note(i))
        (inbox / "blank.txt").write_text("  ")
        first = nightly_run_task("clinic-e2e")  # what beat sends
        for i in range(3):  # the same files dropped again
            (inbox / f"again-{i}.txt").write_text(note(i))
        second = nightly_run_task("clinic-e2e")
    finally:
        monkeypatch.undo()
        config.get_settings.cache_clear()
    assert (first["submitted"], first["rejected"]) == (3, 1)
    assert (second["batch_id"], second["submitted"], second["duplicates"]) == (None, 0, 3)
    ended = wait_for(api, tenant, first["batch_id"], lambda b: b["ended"], timeout_s=600)
    counts = ended["counts"]
    assert counts["succeeded"] + counts["needs_review"] == 3
    (report,) = reports(smtp_server, first["batch_id"])
    text = _text(report)
    assert report["To"] == "pharmacy@example.org"
    assert "Items: 3" in text and f"succeeded:    {counts['succeeded']}" in text
    assert f"needs review: {counts['needs_review']}" in text and "blank.txt" in text
    assert "clinic-e2e" in report["Subject"]
