"""How OpenAI-compatible batches end without the engine (ponder/openai_compat/): requests the
server cannot run become error lines and the batch still completes; a batch past its
``completion_window`` ends ``expired`` with its unstarted requests in the error file."""

from __future__ import annotations

import io
import json
from typing import Any

import openai
import sqlalchemy as sa
from openai.types import Batch

from ponder.config import get_settings
from ponder.db import get_engine, session_scope
from ponder.jobs.reconcile import reconcile
from tests.api.openai.conftest import rows


def request(custom_id: str, url: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"custom_id": custom_id, "method": "POST", "url": url, "body": body}


def job(custom_id: str, i: int) -> dict[str, Any]:
    body = {"task": "medrec_extraction", "strategy": "single", "document": f"Aspirin {i} mg."}
    return request(custom_id, "/v1/jobs", body)


def create(client: openai.OpenAI, lines: list[dict[str, Any]], window: str = "24h") -> Batch:
    content = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    made = client.files.create(file=("requests.jsonl", io.BytesIO(content)), purpose="batch")
    return client.batches.create(
        input_file_id=made.id,
        endpoint="/v1/jobs",
        completion_window=window,  # type: ignore[arg-type]
    )


def error_lines(client: openai.OpenAI, batch: Batch) -> list[tuple[str, str]]:
    assert batch.error_file_id is not None
    lines = [json.loads(x) for x in client.files.content(batch.error_file_id).text.splitlines()]
    assert all(line["response"] is None and line["error"]["message"] for line in lines)
    return [(line["custom_id"], line["error"]["code"]) for line in lines]


def test_requests_the_server_cannot_run_are_error_lines_and_the_batch_completes(
    client, isolated_broker
):
    lines = [
        request("embed", "/v1/embeddings", {"input": "x"}),
        request("no-messages", "/v1/chat/completions", {"model": "m"}),
        request("extra-field", "/v1/jobs", {"task": "medrec_extraction", "document": "x",
                                            "colour": "blue"}),
    ]  # fmt: skip
    batch = create(client, lines)
    assert batch.status == "completed" and batch.output_file_id is None
    assert batch.request_counts is not None
    assert (batch.request_counts.total, batch.request_counts.failed) == (3, 3)
    assert error_lines(client, batch) == [
        ("embed", "unsupported_url"),
        ("no-messages", "invalid_request"),
        ("extra-field", "invalid_request"),
    ]
    assert rows("jobs") == 0


def test_a_batch_past_its_window_ends_expired_with_its_requests_in_the_error_file(
    client, isolated_broker
):
    batch = create(client, [job("a", 1), job("b", 2)], window="1h")
    assert batch.expires_at is not None and batch.expires_at - batch.created_at == 3600
    with get_engine().begin() as conn:  # the window passes before a worker took them
        for table in ("jobs", "batches"):
            conn.execute(sa.text(f"update {table} set complete_by = now() - interval '1 second'"))
    with session_scope() as session:
        assert reconcile(session=session, settings=get_settings()).expired_jobs == 2
    ended = client.batches.retrieve(batch.id)
    assert ended.status == "expired" and ended.expired_at is not None
    assert ended.request_counts is not None
    assert (ended.request_counts.completed, ended.request_counts.failed) == (0, 2)
    assert ended.output_file_id is None
    assert error_lines(client, ended) == [("a", "batch_expired"), ("b", "batch_expired")]


def test_batches_are_listed_newest_first_a_page_at_a_time(client, isolated_broker):
    made = [create(client, [job("a", i)]).id for i in range(3)]
    first = client.batches.list(limit=2)
    assert [b.id for b in first.data] == made[::-1][:2] and first.has_more
    rest = client.batches.list(limit=2, after=first.data[-1].id)
    assert [b.id for b in rest.data] == made[:1] and not rest.has_more
