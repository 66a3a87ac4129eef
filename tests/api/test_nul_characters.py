"""A NUL character anywhere in the input is a 422 naming where it is, not a 500: PostgreSQL
stores none in text or jsonb. Found by fuzzing the API (tests/security/test_fuzz_openapi.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import TenantKey, queued_messages

JOB = {"task": "medrec_extraction", "document": "Aspirin 81 mg daily.", "strategy": "single"}
JSONL = {"content-type": "application/jsonl"}


@pytest.fixture
def app_client(database: None) -> Iterator[Any]:
    """A client that answers a server error with a 500 instead of raising it in the test."""
    from fastapi.testclient import TestClient

    from api.main import app

    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def line(**change: Any) -> bytes:
    return json.dumps({**JOB, "custom_id": "a", **change}).encode() + b"\n"


@pytest.mark.parametrize(
    "path",
    [
        "/v1/jobs/j%00",
        "/v1/jobs/j%00/trace",
        "/v1/batches/b%00",
        "/v1/webhooks/w%00",
        "/v1/jobs?task=medrec%00",
        "/v1/jobs?cursor=%00",
    ],
    ids=["job-id", "trace-job-id", "batch-id", "endpoint-id", "task-filter", "cursor"],
)
def test_a_nul_in_the_url_is_422(app_client, tenant: TenantKey, path):
    response = app_client.get(path, headers=tenant.headers)
    assert response.status_code == 422, response.text
    assert "NUL character" in response.json()["error"]


@pytest.mark.parametrize(
    "change",
    [
        {"document": "Aspirin\x00 81 mg"},
        {"metadata": {"ward": "a\x00b"}},
        {"metadata": {"a\x00b": 1}},
        {"metadata": {"deep": [{"x": "\x00"}]}},
        {"webhook_url": "http://127.0.0.1:9/h\x00"},
        {"task": "medrec_extraction\x00"},
    ],
    ids=["document", "metadata-value", "metadata-key", "metadata-nested", "webhook", "task"],
)
def test_a_nul_in_a_job_is_422_and_queues_nothing(app_client, tenant, isolated_broker, change):
    response = app_client.post("/v1/jobs", json={**JOB, **change}, headers=tenant.headers)
    assert response.status_code == 422, response.text
    assert "NUL character" in response.json()["error"]
    assert f"{next(iter(change))} holds a NUL" in response.json()["error"]
    assert queued_messages(isolated_broker) == 0


def test_a_nul_in_an_uploaded_form_field_is_422(app_client, tenant, isolated_broker):
    response = app_client.post(
        "/v1/jobs",
        data={"task": "medrec_extraction", "metadata": '{"ward": "a\\u0000b"}'},
        files={"file": ("note.txt", b"Aspirin 81 mg daily.", "text/plain")},
        headers=tenant.headers,
    )
    assert response.status_code == 422 and "metadata holds a NUL" in response.json()["error"]


@pytest.mark.parametrize(
    ("body", "params", "phrases"),
    [
        (line(custom_id="a\x00"), {}, ("line 1", "custom_id holds a NUL")),
        (line() + line(custom_id="b", document="x\x00"), {}, ("line 2", "document holds a NUL")),
        (line(metadata={"k": "\x00"}), {}, ("line 1", "metadata holds a NUL")),
        (line(), {"name": "nightly\x00"}, ("NUL character",)),
        (line(), {"metadata": '{"k": "\\u0000"}'}, ("metadata holds a NUL",)),
    ],
    ids=["custom-id", "document", "item-metadata", "batch-name", "batch-metadata"],
)
def test_a_nul_in_a_batch_is_422_and_writes_nothing(
    app_client, tenant, isolated_broker, body, params, phrases
):
    if params:  # batch options go in form fields, never the query string
        files = {"file": ("items.jsonl", body, "application/jsonl")}
        response = app_client.post("/v1/batches", data=params, files=files, headers=tenant.headers)
    else:
        response = app_client.post("/v1/batches", content=body, headers={**tenant.headers, **JSONL})
    assert response.status_code == 422, response.text
    assert all(phrase in response.json()["error"] for phrase in phrases), response.text
    assert app_client.get("/v1/batches", headers=tenant.headers).json()["items"] == []
    assert queued_messages(isolated_broker) == 0


def test_a_nul_in_a_webhook_registration_is_422(app_client, tenant):
    for body in (
        {"url": "http://127.0.0.1:9/h\x00"},
        {"url": "http://127.0.0.1:9/h", "description": "\x00"},
    ):
        response = app_client.post("/v1/webhooks", json=body, headers=tenant.headers)
        assert response.status_code == 422, response.text
        assert "NUL character" in response.json()["error"]
    assert app_client.get("/v1/webhooks", headers=tenant.headers).json() == []
