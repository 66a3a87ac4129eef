"""A bad batch upload gets a clear 4xx naming every bad line, writes no row, queues nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa

from ponder import config
from ponder.db import get_engine
from tests.conftest import queued_messages

GOOD = {"custom_id": "a", "task": "medrec_extraction", "document": "Aspirin 81 mg daily."}
JSONL = {"content-type": "application/jsonl"}


def line(**change: Any) -> bytes:
    return json.dumps({**GOOD, **change}).encode() + b"\n"


def rows_written() -> int:
    with get_engine().connect() as conn:
        return sum(
            int(conn.execute(sa.text(f"select count(*) from {table}")).scalar_one())
            for table in ("jobs", "batches")
        )


def post(api: Any, tenant: Any, body: bytes, **options: Any) -> Any:
    """A JSONL body; with options, a multipart upload with the options as form fields."""
    if options:
        files = {"file": ("items.jsonl", body, "application/jsonl")}
        return api.post("/v1/batches", data=options, files=files, headers=tenant.headers)
    return api.post("/v1/batches", content=body, headers={**tenant.headers, **JSONL})


def assert_refused(response: Any, status: int, phrase: str, broker: Any) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert phrase.lower() in body["error"].lower(), body
    assert rows_written() == 0
    assert queued_messages(broker) == 0
    return body


@pytest.fixture
def small_limits(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PONDER_LIMITS__MAX_BATCH_BYTES", "2000")
    monkeypatch.setenv("PONDER_LIMITS__MAX_BATCH_ITEMS", "3")
    config.get_settings.cache_clear()
    yield
    monkeypatch.undo()
    config.get_settings.cache_clear()


def test_valid_upload_writes_rows_and_queues_a_message(api, tenant, isolated_broker):
    # The control for every case below: the checks can see rows and a message.
    response = post(api, tenant, line() + line(custom_id="b"))
    assert response.status_code == 201, response.text
    assert rows_written() == 3 and queued_messages(isolated_broker) == 1


def test_every_bad_line_is_listed_with_its_number(api, tenant, isolated_broker):
    body = (
        line()
        + b'{"custom_id": "b", "task": \n'
        + line(custom_id="c")
        + b"[1, 2]\n"
        + line(custom_id="e", task="poetry")
        + line(custom_id="f", document="  ")
    )
    response = post(api, tenant, body)
    detail = assert_refused(response, 422, "batch rejected, nothing was submitted", isolated_broker)
    errors = detail["detail"]["errors"]
    assert [e["line"] for e in errors] == [2, 4, 5, 6]
    assert "not valid JSON" in errors[0]["error"]
    assert "must be a JSON object" in errors[1]["error"]
    assert "unknown task; valid tasks:" in errors[2]["error"]
    assert "document is empty" in errors[3]["error"]
    assert "4 invalid lines" in detail["error"] and "line 2:" in detail["error"]


def test_line_numbers_count_blank_lines(api, tenant, isolated_broker):
    response = post(api, tenant, line() + b"\n\n" + b"nonsense\n")
    body = assert_refused(response, 422, "line 4", isolated_broker)
    assert body["detail"]["errors"] == [{"line": 4, "error": body["detail"]["errors"][0]["error"]}]


@pytest.mark.parametrize(
    ("body", "phrase"),
    [
        (b"", "has no items"),
        (b"\n  \n\n", "has no items"),
    ],
    ids=["empty-file", "blank-lines-only"],
)
def test_an_upload_without_items_is_refused(api, tenant, isolated_broker, body, phrase):
    assert_refused(post(api, tenant, body), 422, phrase, isolated_broker)


def test_duplicate_custom_ids_are_refused_naming_the_first_line(api, tenant, isolated_broker):
    body = line() + line(custom_id="b") + line()
    response = post(api, tenant, body)
    detail = assert_refused(response, 422, "duplicates the one on line 1", isolated_broker)
    assert [e["line"] for e in detail["detail"]["errors"]] == [3]


@pytest.mark.parametrize(
    ("change", "phrase"),
    [
        ({"custom_id": ""}, "custom_id"),
        ({"custom_id": None}, "custom_id"),
        ({"task": None}, "task"),
        ({"webhook_url": "https://example.org/hook"}, "webhook_url: Extra inputs"),
        ({"strategy": "guess"}, "unknown strategy; valid strategies:"),
        ({"n": 99}, "n must be between"),
        ({"document": "x" * 60_001}, "limit for task medrec_extraction"),
        ({"strategy": "beam", "params": {"width": 99}}, "width"),
    ],
    ids=[
        "empty-custom-id",
        "missing-custom-id",
        "missing-task",
        "per-item-webhook",
        "unknown-strategy",
        "n-too-large",
        "document-too-long",
        "bad-params",
    ],
)
def test_an_invalid_item_rejects_the_batch(api, tenant, isolated_broker, change, phrase):
    response = post(api, tenant, line(custom_id="ok") + line(**change))
    detail = assert_refused(response, 422, phrase, isolated_broker)
    assert [e["line"] for e in detail["detail"]["errors"]] == [2]


def test_a_line_that_is_not_utf8_is_refused(api, tenant, isolated_broker):
    response = post(api, tenant, line() + b'{"custom_id": "\xff\xfe"}\n')
    assert_refused(response, 422, "line 2: line is not UTF-8", isolated_broker)


def test_a_line_over_the_request_limit_is_refused(api, tenant, isolated_broker):
    huge = json.dumps({**GOOD, "document": "y" * 1_100_000}).encode() + b"\n"
    response = post(api, tenant, line(custom_id="z") + huge + line(custom_id="w"))
    detail = assert_refused(response, 422, "longer than 1000000 bytes", isolated_broker)
    assert [e["line"] for e in detail["detail"]["errors"]] == [2]


def test_an_upload_declared_over_the_byte_limit_is_413(api, tenant, isolated_broker, small_limits):
    body = b"".join(line(custom_id=str(i), document="z" * 900) for i in range(3))
    assert_refused(post(api, tenant, body), 413, "the batch limit is 2000", isolated_broker)


def test_a_streamed_upload_is_cut_off_at_the_byte_limit(api, tenant, isolated_broker, small_limits):
    def chunks():  # no content-length: the server counts as it reads
        for i in range(3):
            yield line(custom_id=str(i), document="z" * 900)

    response = post(api, tenant, chunks())
    assert_refused(response, 413, "exceeds the batch limit of 2000 bytes", isolated_broker)


def test_a_multipart_upload_over_the_byte_limit_is_413(api, tenant, isolated_broker, small_limits):
    body = b"".join(line(custom_id=str(i), document="z" * 900) for i in range(3))
    response = api.post(
        "/v1/batches",
        files={"file": ("b.jsonl", body, "application/jsonl")},
        headers=tenant.headers,
    )
    assert_refused(response, 413, "limit", isolated_broker)


def test_more_items_than_the_limit_is_413(api, tenant, isolated_broker, small_limits):
    body = b"".join(line(custom_id=str(i)) for i in range(4))
    assert_refused(post(api, tenant, body), 413, "more than 3 items", isolated_broker)


@pytest.mark.parametrize(
    ("params", "phrase"),
    [
        ({"email": "not-an-address"}, "email"),
        ({"priority": "12"}, "priority"),
        ({"metadata": "{not json"}, "metadata must be a JSON object"),
        ({"colour": "blue"}, "colour"),
        ({"webhook_url": "http://10.0.0.8/hook"}, "webhook_url refused"),
        ({"webhook_endpoint_id": "nope"}, "not one of your endpoints"),
    ],
    ids=[
        "bad-email",
        "bad-priority",
        "bad-metadata",
        "unknown-option",
        "private-webhook",
        "unknown-endpoint",
    ],  # fmt: skip
)
def test_invalid_batch_options_are_refused(api, tenant, isolated_broker, params, phrase):
    assert_refused(post(api, tenant, line(), **params), 422, phrase, isolated_broker)


def test_unsupported_content_type_is_415(api, tenant, isolated_broker):
    response = api.post(
        "/v1/batches", content=line(), headers={**tenant.headers, "content-type": "text/csv"}
    )
    assert_refused(response, 415, "multipart/form-data", isolated_broker)


def test_multipart_without_a_file_part_is_refused(api, tenant, isolated_broker):
    response = api.post(
        "/v1/batches",
        data={"name": "x"},
        files={"other": ("a.jsonl", line(), "application/jsonl")},
        headers=tenant.headers,
    )
    assert_refused(response, 422, "needs a 'file' part", isolated_broker)


def test_missing_api_key_is_401(api, tenant, isolated_broker):
    response = api.post("/v1/batches", content=line(), headers=JSONL)
    assert_refused(response, 401, "missing API key", isolated_broker)


def test_unknown_batch_is_404(api, tenant, isolated_broker):
    for path in ("/v1/batches/nope", "/v1/batches/nope/results"):
        response = api.get(path, headers=tenant.headers)
        assert response.status_code == 404 and "no batch nope" in response.json()["error"]
