"""OpenAI-compatible batches end to end with the official client: the real Celery worker and
the real vLLM engine on CPU answer ``/v1/jobs`` lines (strategy ``single``, short notes); lines
the server cannot run land in the error file while the batch completes; a cancel keeps the
answers of what had run."""

from __future__ import annotations

import io
import json
from typing import Any

import openai
import pytest
from openai.types import Batch

from tests.api.openai.conftest import wait_until

pytestmark = pytest.mark.e2e

DRUGS = ["metoprolol 50 mg twice daily", "lisinopril 10 mg daily", "aspirin 81 mg daily",
         "atorvastatin 20 mg at night", "metformin 500 mg twice daily"]  # fmt: skip
TERMINAL = {"completed", "failed", "expired", "cancelled"}


def job_line(custom_id: str, i: int) -> dict[str, Any]:
    note = f"Clinic note {i}. Medications: {DRUGS[i % len(DRUGS)]}."
    body = {"task": "medrec_extraction", "strategy": "single", "document": note}
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/jobs", "body": body}


def chat_line(custom_id: str) -> dict[str, Any]:
    from ponder.config import get_settings
    from ponder.openai_compat.chat import served_model_names

    schema = {"type": "object", "properties": {"drug": {"type": "string"}}, "required": ["drug"]}
    body = {
        "model": served_model_names(get_settings())[0],
        "messages": [{"role": "user", "content": f"Name the drug in: {DRUGS[2]}. Answer in JSON."}],
        "max_tokens": 48,
        "response_format": {"type": "json_schema", "json_schema": {"name": "d", "schema": schema}},
    }
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


def create(client: openai.OpenAI, lines: list[dict[str, Any]]) -> Batch:
    content = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    made = client.files.create(file=("requests.jsonl", io.BytesIO(content)), purpose="batch")
    return client.batches.create(
        input_file_id=made.id, endpoint="/v1/jobs", completion_window="24h"
    )


def lines_of(client: openai.OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    assert file_id is not None
    return [json.loads(x) for x in client.files.content(file_id).text.splitlines()]


def wait_for_end(client: openai.OpenAI, batch_id: str, timeout_s: float) -> Batch:
    def ended() -> Batch | None:
        batch = client.batches.retrieve(batch_id)
        return batch if batch.status in TERMINAL else None

    found: Batch = wait_until(ended, timeout_s=timeout_s, every_s=1.0)
    return found


@pytest.mark.timeout(900)
def test_a_batch_completes_with_answers_in_the_output_file_and_refused_lines_in_the_error_file(
    client, worker
):
    unsupported = {"custom_id": "embed", "method": "POST", "url": "/v1/embeddings",
                   "body": {"input": "text"}}  # fmt: skip
    unknown_task = job_line("bad-task", 0)
    unknown_task["body"]["task"] = "no_such_task"
    lines = [job_line("note-0", 0), unsupported, chat_line("chat"), job_line("note-1", 1),
             unknown_task]  # fmt: skip
    created = create(client, lines)
    assert created.status == "in_progress" and created.completion_window == "24h"
    assert created.expires_at is not None and created.expires_at - created.created_at == 86400
    assert created.request_counts is not None and created.request_counts.total == 5

    ended = wait_for_end(client, created.id, timeout_s=600)
    assert ended.status == "completed"
    assert ended.request_counts is not None
    assert (ended.request_counts.total, ended.request_counts.completed) == (5, 3)
    assert ended.request_counts.failed == 2
    assert ended.completed_at is not None and ended.finalizing_at is not None

    answers = lines_of(client, ended.output_file_id)
    assert [a["custom_id"] for a in answers] == ["note-0", "chat", "note-1"]  # the file's order
    chat = answers.pop(1)["response"]
    completion = chat["body"]
    assert chat["status_code"] == 200 and completion["object"] == "chat.completion"
    assert completion["ponder"]["job_id"] == chat["request_id"]
    assert completion["usage"]["completion_tokens"] > 0  # answered by the engine
    content = completion["choices"][0]["message"]["content"]
    if completion["ponder"]["status"] == "succeeded":  # schema validity is its check
        assert isinstance(json.loads(content)["drug"], str)
    for answer in answers:
        response = answer["response"]
        assert answer["error"] is None and response["status_code"] == 200
        job = response["body"]
        assert job["id"] == response["request_id"] and job["task"] == "medrec_extraction"
        assert job["status"] in ("succeeded", "needs_review") and job["result"]["summary"]
        assert job["tokens"]["completion"] > 0  # answered by the engine

    errors = lines_of(client, ended.error_file_id)
    assert [(e["custom_id"], e["error"]["code"]) for e in errors] == [
        ("embed", "unsupported_url"),
        ("bad-task", "invalid_request"),
    ]
    assert all(e["response"] is None and e["error"]["message"] for e in errors)
    assert "/v1/embeddings" in errors[0]["error"]["message"]
    assert "unknown task" in errors[1]["error"]["message"]

    output = client.files.retrieve(ended.output_file_id or "")
    assert output.purpose == "batch_output"
    assert output.bytes == len(client.files.content(output.id).content)
    # Read again: the same files, not new ones.
    again = client.batches.retrieve(created.id)
    assert (again.output_file_id, again.error_file_id) == (
        ended.output_file_id,
        ended.error_file_id,
    )
    assert [b.id for b in client.batches.list().data] == [created.id]


@pytest.mark.timeout(900)
def test_cancelling_a_running_batch_keeps_the_answers_of_what_ran(client, worker, monkeypatch):
    from ponder.config import get_settings

    # About cancelling, not answers: 48-token answers (frozen on each item at creation).
    monkeypatch.setenv("PONDER_LIMITS__MAX_TOKENS_PER_SAMPLE", "48")
    get_settings.cache_clear()
    try:
        created = create(client, [job_line(f"note-{i:02d}", i) for i in range(40)])
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()

    def some_answered() -> bool:
        counts = client.batches.retrieve(created.id).request_counts
        return counts is not None and counts.completed >= 1

    wait_until(some_answered, timeout_s=600, every_s=0.5)
    cancelling = client.batches.cancel(created.id)
    assert cancelling.status in ("cancelling", "cancelled")
    assert cancelling.cancelling_at is not None

    ended = wait_for_end(client, created.id, timeout_s=300)
    assert ended.status == "cancelled" and ended.cancelled_at is not None
    counts = ended.request_counts
    assert counts is not None and counts.total == 40
    assert counts.completed >= 1 and counts.failed >= 1  # partial: some ran, some never did
    assert counts.completed + counts.failed == 40

    answers = lines_of(client, ended.output_file_id)
    errors = lines_of(client, ended.error_file_id)
    assert len(answers) == counts.completed and len(errors) == counts.failed
    assert all(a["response"]["body"]["result"] is not None for a in answers)
    assert all(e["error"]["code"] == "batch_cancelled" for e in errors)
    ids = [x["custom_id"] for x in answers + errors]
    assert sorted(ids) == [f"note-{i:02d}" for i in range(40)]
    with pytest.raises(openai.ConflictError):  # nothing left to cancel
        client.batches.cancel(created.id)
