"""End to end: chat bodies become jobs, the real worker runs them on the real engine, and the
answered jobs convert to chat.completion objects: under a JSON schema, checked and valid for
it; as free text, answered and left for a person, never passed as checked."""

from __future__ import annotations

import json

import jsonschema
import pytest
import sqlalchemy as sa

from ponder.config import get_settings
from ponder.db import get_engine, session_scope
from ponder.models import Job
from ponder.openai_compat.chat import chat_completion_body, chat_job_fields, served_model_names
from tests.conftest import wait_for_status

pytestmark = pytest.mark.e2e

ENDED = {"succeeded", "needs_review", "failed", "cancelled", "expired"}
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string", "enum": ["Paris", "Rome", "Madrid"]}},
    "required": ["city"],
    "additionalProperties": False,
}


def submit(api, tenant, body: dict) -> str:
    response = api.post("/v1/jobs", json=chat_job_fields(body), headers=tenant.headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def verdicts_of(job_id: str) -> dict[str, bool]:
    with get_engine().connect() as conn:
        rows = conn.execute(
            sa.text(
                "select v.verifier, v.passed from verdicts v join candidates c "
                "on c.id = v.candidate_id where c.job_id = :j"
            ),
            {"j": job_id},
        )
        return {row.verifier: row.passed for row in rows}


def completion_of(job_id: str) -> tuple[dict, str | None]:
    """The job's chat.completion and its selected candidate's finish reason."""
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None
        body = chat_completion_body(job, session=session)
        with get_engine().connect() as conn:
            reason = conn.execute(
                sa.text("select finish_reason from candidates where id = :c"),
                {"c": job.selected_candidate_id},
            ).scalar_one()
        return body, reason


def test_chat_requests_run_through_the_queue_and_come_back_as_chat_completions(api, tenant, worker):
    model = served_model_names(get_settings())[0]
    with_schema = submit(
        api,
        tenant,
        {
            "model": model,
            "messages": [
                {"role": "system", "content": "You answer with JSON."},
                {"role": "user", "content": "What is the capital of France?"},
            ],
            "max_tokens": 24,
            "temperature": 0,
            "seed": 1,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "capital", "schema": SCHEMA},
            },
        },
    )
    free_text = submit(
        api,
        tenant,
        {
            "model": model,
            "messages": [{"role": "user", "content": "Say hello in three words."}],
            "max_tokens": 12,
            "seed": 1,
        },
    )

    job = wait_for_status(with_schema, ENDED, timeout_s=600)
    assert job["status"] == "succeeded", (job["error"], job["result"])
    assert verdicts_of(with_schema) == {"schema": True, "response_format": True, "non_empty": True}
    body, _ = completion_of(with_schema)
    assert body["object"] == "chat.completion" and body["model"] == model
    [choice] = body["choices"]
    assert choice["finish_reason"] == "stop"
    jsonschema.validate(json.loads(choice["message"]["content"]), SCHEMA)
    assert body["usage"]["prompt_tokens"] == job["prompt_tokens"] > 0
    assert body["usage"]["completion_tokens"] == job["completion_tokens"] > 0
    assert body["ponder"]["checked"] is True

    job = wait_for_status(free_text, ENDED, timeout_s=600)
    assert job["status"] == "needs_review", (job["error"], job["result"])
    assert verdicts_of(free_text)["response_format"] is False
    body, reason = completion_of(free_text)
    [choice] = body["choices"]
    assert choice["message"]["content"] == job["result"]["output"]["content"]
    assert choice["finish_reason"] == ("length" if reason == "length" else "stop")
    assert body["ponder"]["checked"] is False
    assert "response_format" in body["ponder"]["failing_checks"]
