"""Bad input on the OpenAI-compatible surface (api/routes/openai.py, ponder/openai_compat/):
a request file whose lines are not requests is refused at batch creation with each bad line
listed, nothing written and nothing queued; unknown windows, endpoints and purposes are 400s
in OpenAI's error shape."""

from __future__ import annotations

import io
import json
from typing import Any

import httpx
import openai
import pytest

from tests.api.openai.conftest import rows
from tests.conftest import queued_messages

NOTE = "Takes aspirin 81 mg daily."
GOOD = {"custom_id": "a", "method": "POST", "url": "/v1/jobs",
        "body": {"task": "medrec_extraction", "document": NOTE}}  # fmt: skip


def jsonl(*lines: Any) -> bytes:
    return b"".join((x if isinstance(x, bytes) else json.dumps(x).encode()) + b"\n" for x in lines)


def upload(client: openai.OpenAI, content: bytes) -> str:
    return client.files.create(file=("requests.jsonl", io.BytesIO(content)), purpose="batch").id


def refusal(client: openai.OpenAI, content: bytes, **create: Any) -> openai.BadRequestError:
    file_id = upload(client, content)
    with pytest.raises(openai.BadRequestError) as raised:
        client.batches.create(
            input_file_id=file_id,
            endpoint=create.get("endpoint", "/v1/jobs"),  # type: ignore[arg-type]
            completion_window=create.get("completion_window", "24h"),  # type: ignore[arg-type]
        )
    return raised.value


def assert_nothing_submitted(broker: Any) -> None:
    assert rows("batches") == rows("jobs") == rows("openai_batches") == 0
    assert queued_messages(broker) == 0


@pytest.mark.parametrize(
    ("bad_line", "code", "param"),
    [
        (b"this is not json", "invalid_json_line", None),
        (b'["a list", "not an object"]', "invalid_json_line", None),
        ({k: v for k, v in GOOD.items() if k != "custom_id"}, "missing_custom_id", "custom_id"),
        ({**GOOD, "custom_id": ""}, "missing_custom_id", "custom_id"),
        ({**GOOD, "method": "GET"}, "invalid_method", "method"),
        ({k: v for k, v in GOOD.items() if k != "method"}, "invalid_method", "method"),
        ({**GOOD, "body": "not an object"}, "invalid_body", "body"),
        ({**GOOD, "body": None}, "invalid_body", "body"),
        ({k: v for k, v in GOOD.items() if k != "url"}, "missing_url", "url"),
    ],
)
def test_a_line_that_is_not_a_request_refuses_the_file(
    client, isolated_broker, bad_line: Any, code: str, param: str | None
):
    good = {**GOOD, "custom_id": "first"}
    error = refusal(client, jsonl(good, bad_line))
    body = error.body
    assert isinstance(body, dict)
    assert body["type"] == "invalid_request_error" and body["code"] == "invalid_input_file"
    assert body["param"] == "input_file_id" and "line 2" in body["message"]
    assert body["errors"]["object"] == "list"
    (listed,) = body["errors"]["data"]
    assert listed["line"] == 2 and listed["code"] == code and listed["param"] == param
    assert listed["message"]
    assert_nothing_submitted(isolated_broker)


def test_a_duplicate_custom_id_is_refused_naming_both_lines(client, isolated_broker):
    error = refusal(client, jsonl(GOOD, {**GOOD, "custom_id": "b"}, GOOD))
    assert isinstance(error.body, dict)
    (listed,) = error.body["errors"]["data"]
    assert listed["line"] == 3 and listed["code"] == "duplicate_custom_id"
    assert "line 1" in listed["message"]
    assert_nothing_submitted(isolated_broker)


def test_every_bad_line_is_listed(client, isolated_broker):
    error = refusal(client, jsonl(b"{", GOOD, {**GOOD, "method": "PUT"}, {**GOOD, "body": []}))
    assert isinstance(error.body, dict)
    listed = [(e["line"], e["code"]) for e in error.body["errors"]["data"]]
    assert listed == [(1, "invalid_json_line"), (3, "invalid_method"), (4, "invalid_body")]
    assert "3 invalid lines" in error.body["message"]
    assert_nothing_submitted(isolated_broker)


def test_a_line_that_is_not_utf8_is_refused(client, isolated_broker):
    error = refusal(client, jsonl(GOOD, b'{"custom_id": "\xff\xfe"}'))
    assert isinstance(error.body, dict)
    (listed,) = error.body["errors"]["data"]
    assert listed["line"] == 2 and "UTF-8" in listed["message"]
    assert_nothing_submitted(isolated_broker)


def test_an_empty_file_is_refused(client, isolated_broker):
    error = refusal(client, b"\n\n")
    assert isinstance(error.body, dict) and error.body["code"] == "empty_input_file"
    assert_nothing_submitted(isolated_broker)


@pytest.mark.parametrize("window", ["1d", "24", "0h", "169h", "24 h", "", "forever"])
def test_an_unknown_completion_window_is_refused(client, isolated_broker, window: str):
    error = refusal(client, jsonl(GOOD), completion_window=window)
    assert isinstance(error.body, dict)
    assert error.body["param"] == "completion_window"
    assert error.body["code"] == "invalid_completion_window"
    assert "24h" in error.body["message"]
    assert_nothing_submitted(isolated_broker)


def test_an_unsupported_endpoint_is_refused(client, isolated_broker):
    error = refusal(client, jsonl(GOOD), endpoint="/v1/embeddings")
    assert isinstance(error.body, dict) and error.body["param"] == "endpoint"
    assert "/v1/jobs" in error.body["message"]
    assert_nothing_submitted(isolated_broker)


def test_a_missing_input_file_is_a_404(client, isolated_broker):
    with pytest.raises(openai.NotFoundError) as raised:
        client.batches.create(
            input_file_id="file-missing", endpoint="/v1/chat/completions", completion_window="24h"
        )
    assert isinstance(raised.value.body, dict) and "file-missing" in raised.value.body["message"]
    assert_nothing_submitted(isolated_broker)


def test_a_missing_field_is_a_400_naming_it(server, tenant, isolated_broker):
    response = httpx.post(
        f"{server}/openai/v1/batches",
        json={"endpoint": "/v1/jobs", "completion_window": "24h"},
        headers=tenant.headers,
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == "input_file_id"
    assert_nothing_submitted(isolated_broker)


def test_a_purpose_other_than_batch_is_refused(client):
    with pytest.raises(openai.BadRequestError) as raised:
        client.files.create(file=("a.jsonl", io.BytesIO(jsonl(GOOD))), purpose="fine-tune")
    assert isinstance(raised.value.body, dict) and raised.value.body["param"] == "purpose"
    assert rows("openai_files") == 0


def test_a_file_over_the_batch_limit_is_a_413(client, monkeypatch):
    from ponder.config import get_settings

    monkeypatch.setenv("PONDER_LIMITS__MAX_BATCH_BYTES", "100")
    get_settings.cache_clear()
    try:
        with pytest.raises(openai.APIStatusError) as raised:
            client.files.create(file=("a.jsonl", io.BytesIO(b" " * 500)), purpose="batch")
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert raised.value.status_code == 413
    assert rows("openai_files") == 0


def test_a_bad_key_is_a_401_in_openai_shape(server, tenant):
    with openai.OpenAI(base_url=f"{server}/openai/v1", api_key="nope", max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError) as raised:
            bad.files.list()
    assert isinstance(raised.value.body, dict) and "API key" in raised.value.body["message"]
