"""A chat_completion job through the native POST /v1/jobs: the request's settings frozen on the
job; a document that is not a chat request, or a strategy that cannot run a conversation,
refused with a 422 naming what to fix, nothing written, nothing queued."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa

from ponder.config import get_settings
from ponder.db import get_engine
from ponder.openai_compat.chat import chat_job_fields, served_model_names
from tests.conftest import queued_messages

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
MESSAGES = [{"role": "user", "content": "Capital of France?"}]
DOCUMENT = json.dumps(
    {
        "messages": MESSAGES,
        "json_schema": SCHEMA,
        "max_tokens": 24,
        "temperature": 0.0,
    }
)


def job_configs() -> list[dict[str, Any]]:
    with get_engine().connect() as conn:
        return [row.config for row in conn.execute(sa.text("select config from jobs"))]


def test_the_requests_sampling_settings_are_frozen_on_the_job(api, tenant, isolated_broker):
    job = {"task": "chat_completion", "document": DOCUMENT, "strategy": "best_of_n", "n": 2}
    response = api.post("/v1/jobs", json=job, headers=tenant.headers)
    assert response.status_code == 201, response.text
    [config] = job_configs()
    assert (config["strategy"]["max_tokens"], config["strategy"]["temperature"]) == (24, 0.0)
    assert config["verifiers"] == ["schema", "response_format", "non_empty"]
    assert (config["template"], config["template_version"]) == (None, "messages-1")
    assert queued_messages(isolated_broker) == 1
    # The public job shows a job without a template like any other.
    shown = api.get(f"/v1/jobs/{response.json()['id']}", headers=tenant.headers)
    assert shown.status_code == 200, shown.text


def test_a_chat_body_submits_through_the_native_route(api, tenant, isolated_broker):
    body = {
        "model": served_model_names(get_settings())[0],
        "messages": [{"role": "user", "content": "Say hello."}],
    }
    response = api.post("/v1/jobs", json=chat_job_fields(body), headers=tenant.headers)
    assert response.status_code == 201, response.text
    [config] = job_configs()
    assert config["strategy"]["name"] == "single"
    assert config["strategy"]["temperature"] == 0.7  # the task's default: the body set none


@pytest.mark.parametrize(
    ("change", "phrase"),
    [
        ({"document": "Capital of France?"}, "document is not a valid chat_completion request"),
        (
            {"document": json.dumps({"messages": [{"role": "tool", "content": "x"}]})},
            "messages.0.role: Input should be",
        ),
        (
            {"document": json.dumps({"messages": MESSAGES, "json_schema": {"type": "string"}})},
            "json_schema: Value error, must describe an object",
        ),
        (
            {"strategy": "extended_reasoning"},
            "task chat_completion runs with the strategies best_of_n, refine, self_consistency, "
            "single; not extended_reasoning",
        ),
        ({"strategy": "beam"}, "not beam"),
    ],
    ids=["not-json", "unknown-role", "schema-not-an-object", "extended-reasoning", "beam"],
)
def test_a_bad_chat_job_is_refused_and_nothing_is_written(
    api, tenant, isolated_broker, change, phrase
):
    job = {"task": "chat_completion", "document": DOCUMENT, **change}
    response = api.post("/v1/jobs", json=job, headers=tenant.headers)
    assert response.status_code == 422, response.text
    assert phrase in response.json()["error"]
    assert job_configs() == []
    assert queued_messages(isolated_broker) == 0
