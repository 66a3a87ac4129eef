"""ponder/openai_compat/chat.py: a chat-completions body as a job's fields, refused naming the
field when it is wrong; an answered job as a chat.completion object."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from ponder.batches.upload import BatchItem
from ponder.config import get_settings
from ponder.errors import InvalidRequest
from ponder.jobs.service import JobRequest
from ponder.models import Job
from ponder.openai_compat.chat import chat_completion_body, chat_job_fields, served_model_names
from tasks.chat_completion.schema import parse_document

MODEL = served_model_names(get_settings())[0]
LIMIT = get_settings().limits.max_tokens_per_sample
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
BODY: dict[str, Any] = {
    "model": MODEL,
    "messages": [
        {"role": "system", "content": "Answer in JSON."},
        {"role": "user", "content": [{"type": "text", "text": "Capital of France?"}]},
    ],
    "max_tokens": 40,
    "temperature": 0.2,
    "seed": 7,
    "response_format": {"type": "json_schema", "json_schema": {"name": "c", "schema": SCHEMA}},
}


def test_a_chat_body_becomes_a_chat_completion_job_with_the_request_as_its_document():
    fields = chat_job_fields(BODY)
    assert fields["task"] == "chat_completion"
    assert (fields["strategy"], fields["seed"]) == ("single", 7)
    request = parse_document(fields["document"])
    assert [m.content for m in request.messages] == ["Answer in JSON.", "Capital of France?"]
    assert (request.json_schema, request.max_tokens, request.temperature) == (SCHEMA, 40, 0.2)
    # The native batch line and the native submit both take the fields as they are.
    BatchItem.model_validate({**fields, "custom_id": "a"})
    JobRequest(**fields)


def test_the_ponder_field_chooses_the_strategy():
    ponder = {"strategy": "best_of_n", "n": 3, "params": {}, "budget_tokens": 5000}
    fields = chat_job_fields({**BODY, "ponder": ponder})
    assert (fields["strategy"], fields["n"], fields["params"]) == ("best_of_n", 3, {})
    assert fields["budget_tokens"] == 5000


def test_json_object_asks_for_an_object_and_no_format_for_free_text():
    as_object = chat_job_fields({**BODY, "response_format": {"type": "json_object"}})
    assert parse_document(as_object["document"]).json_schema == {"type": "object"}
    for free in ({"type": "text"}, None):
        body = {k: v for k, v in BODY.items() if k != "response_format"}
        fields = chat_job_fields(body if free is None else {**body, "response_format": free})
        assert parse_document(fields["document"]).json_schema is None


def test_max_completion_tokens_is_max_tokens():
    body = {k: v for k, v in BODY.items() if k != "max_tokens"}
    fields = chat_job_fields({**body, "max_completion_tokens": 33})
    assert parse_document(fields["document"]).max_tokens == 33


def without(field: str) -> dict[str, Any]:
    return {k: v for k, v in BODY.items() if k != field}


@pytest.mark.parametrize(
    ("body", "phrase"),
    [
        (without("messages"), "messages: Field required"),
        ({**BODY, "messages": "Capital of France?"}, "messages: Input should be a valid list"),
        ({**BODY, "messages": []}, "messages: List should have at least 1 item"),
        (
            {**BODY, "messages": [{"role": "tool", "content": "42"}]},
            "messages.0.role: Input should be 'system', 'developer', 'user' or 'assistant'",
        ),
        (
            {**BODY, "messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
            "messages.0.content: Value error, each content part must be a text part",
        ),
        ({**BODY, "response_format": {"type": "xml"}}, "response_format.type: Input should be"),
        (
            {**BODY, "response_format": {"type": "json_schema"}},
            "response_format.json_schema is required",
        ),
        (
            {**BODY, "response_format": {"type": "json_schema", "json_schema": {"name": "c"}}},
            "response_format.json_schema.schema: Field required",
        ),
        (
            {
                **BODY,
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"schema": {"type": "array"}},
                },
            },
            "response_format.json_schema.schema must describe an object",
        ),
        (
            {
                **BODY,
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"schema": {"type": "object", "required": "city"}},
                },
            },
            "response_format.json_schema.schema is not a valid JSON Schema: at required",
        ),
        (
            {**BODY, "response_format": {"type": "text", "json_schema": {"schema": SCHEMA}}},
            'response_format.json_schema goes with "type": "json_schema"',
        ),
        ({**BODY, "model": "gpt-4o"}, f"model: unknown model; this server runs '{MODEL}'"),
        (without("model"), "model: Field required"),
        ({**BODY, "n": 2}, "n: a Ponder job answers with one checked choice"),
        ({**BODY, "max_tokens": 10_000}, f"max_tokens: at most {LIMIT} on this server"),
        ({**BODY, "max_completion_tokens": 41}, "max_tokens and max_completion_tokens differ"),
        ({**BODY, "temperature": 2.5}, "temperature: Input should be less than or equal to 2"),
        ({**BODY, "tools": [], "stream": True}, "tools: not supported; stream: not supported"),
        ({**BODY, "ponder": {"strategy": "beam", "width": 2}}, "ponder.width: not supported"),
    ],
    ids=[
        "no-messages",
        "messages-not-a-list",
        "messages-empty",
        "unknown-role",
        "image-part",
        "unknown-format-type",
        "json-schema-missing",
        "schema-missing",
        "schema-not-an-object",
        "schema-invalid",
        "schema-with-text",
        "unknown-model",
        "no-model",
        "several-choices",
        "max-tokens-over-limit",
        "two-max-tokens",
        "temperature",
        "unsupported-fields",
        "unknown-ponder-option",
    ],
)
def test_a_bad_body_is_refused_naming_the_field(body, phrase):
    with pytest.raises(InvalidRequest) as raised:
        chat_job_fields(body)
    assert phrase in raised.value.message
    assert raised.value.status_code == 422


def test_a_refusal_never_quotes_the_messages():
    secret = "Patient Jane Roe, MRN 0012345"
    body = {**BODY, "messages": [{"role": "patient", "content": secret}], "tools": [secret]}
    with pytest.raises(InvalidRequest) as raised:
        chat_job_fields(body)
    assert "Jane" not in raised.value.message and "0012345" not in raised.value.message


def answered_job(document: str, **fields: Any) -> Job:
    at = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    values: dict[str, Any] = {
        "id": "job-1",
        "tenant_id": "t",
        "task": "chat_completion",
        "status": "succeeded",
        "request_hash": "h",
        "config": {"model": "/models/smollm2-135m-instruct", "engine": "vllm"},
        "document": document,
        "created_at": at,
        "finished_at": at,
        "prompt_tokens": 30,
        "completion_tokens": 8,
        "result": {"output": {"city": "Paris"}, "failing_checks": []},
    }
    return Job(**{**values, **fields})


def test_a_checked_answer_is_a_chat_completion_whose_content_is_the_json():
    job = answered_job(chat_job_fields(BODY)["document"])
    body = chat_completion_body(job)
    assert body["object"] == "chat.completion"
    assert body["id"] == "chatcmpl-job-1" and body["model"] == "smollm2-135m-instruct"
    assert body["created"] == int(datetime(2026, 12, 1, 12, 0, tzinfo=UTC).timestamp())
    [choice] = body["choices"]
    assert choice["index"] == 0 and choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant"
    assert json.loads(choice["message"]["content"]) == {"city": "Paris"}
    assert body["usage"] == {"prompt_tokens": 30, "completion_tokens": 8, "total_tokens": 38}
    assert body["ponder"]["checked"] is True and body["ponder"]["status"] == "succeeded"


def test_free_text_comes_back_as_text_and_says_it_was_not_checked():
    document = chat_job_fields(without("response_format"))["document"]
    job = answered_job(
        document,
        status="needs_review",
        result={
            "output": {"content": "Paris."},
            "failing_checks": [{"verifier": "response_format", "required": True}],
        },
    )
    body = chat_completion_body(job)
    assert body["choices"][0]["message"]["content"] == "Paris."
    assert body["ponder"]["checked"] is False
    assert body["ponder"]["failing_checks"] == ["response_format"]


def test_a_job_without_an_answer_has_null_content_not_an_invented_one():
    job = answered_job(
        chat_job_fields(BODY)["document"],
        status="needs_review",
        result={"output": None, "failing_checks": [{"verifier": "schema"}]},
    )
    body = chat_completion_body(job)
    assert body["choices"][0]["message"]["content"] is None
    assert body["ponder"]["checked"] is False


def test_a_reviewers_corrected_answer_is_the_content():
    job = answered_job(
        chat_job_fields(BODY)["document"],
        status="reviewed",
        result={
            "output": {"city": "Lyon"},
            "failing_checks": [],
            "review": {"decision": "corrected", "answer": {"city": "Paris"}},
        },
    )
    body = chat_completion_body(job)
    assert json.loads(body["choices"][0]["message"]["content"]) == {"city": "Paris"}
    assert body["ponder"]["checked"] is True
    assert body["ponder"]["review_decision"] == "corrected"


@pytest.mark.parametrize("status", ["failed", "cancelled", "expired", "queued", "running"])
def test_a_job_that_has_not_answered_has_no_chat_completion(status):
    job = answered_job(chat_job_fields(BODY)["document"], status=status, result=None)
    with pytest.raises(ValueError, match=f"is {status}: it has no answer"):
        chat_completion_body(job)


def test_another_tasks_job_has_no_chat_completion():
    job = answered_job("Metoprolol 50 mg", task="medrec_extraction")
    with pytest.raises(ValueError, match="not chat_completion"):
        chat_completion_body(job)
