"""chat_completion: a request's messages, schema and settings bound from its document; an
answer checked against the request's schema, and free text never passed as checked."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ponder.verify import SCHEMA_VERIFIER, verify_candidate
from tasks.chat_completion import TASK
from tasks.chat_completion.checks import UNCHECKED_FREE_TEXT
from tasks.chat_completion.schema import (
    ChatObject,
    ChatRequest,
    ChatText,
    document_of,
    parse_document,
)
from tasks.registry import get_task

SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string", "enum": ["Paris", "Rome"]}},
    "required": ["city"],
    "additionalProperties": False,
}
MESSAGES = [
    {"role": "developer", "content": "Answer in JSON."},
    {"role": "user", "content": "Capital of France?"},
]


def document(**fields: Any) -> str:
    return json.dumps({"messages": MESSAGES, **fields})


def nested(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"a": schema}}
    return schema


def verdicts_for(text: str, doc: str) -> dict[str, Any]:
    bound = TASK.for_document(doc)
    _, verdicts = verify_candidate(
        text=text,
        output_model=bound.output_model,
        document=doc,
        verifiers=bound.verifiers,
        parse=bound.parse_output,
    )
    return {v.verifier: v for v in verdicts}


def test_the_task_is_registered_by_name():
    assert get_task("chat_completion") is TASK


def test_a_bound_request_gives_its_messages_schema_and_sampling():
    doc = document(json_schema=SCHEMA, max_tokens=40, temperature=0.0)
    bound = TASK.for_document(doc)
    assert bound.messages(doc) == (
        {"role": "system", "content": "Answer in JSON."},  # developer is the system turn
        {"role": "user", "content": "Capital of France?"},
    )
    assert bound.json_schema() == SCHEMA
    assert bound.output_model is ChatObject
    assert (bound.max_output_tokens, bound.temperature) == (40, 0.0)
    # The registered task keeps its defaults: binding makes a new task type.
    assert (TASK.max_output_tokens, TASK.temperature, TASK.request) == (512, 0.7, None)


def test_a_request_without_a_schema_asks_for_free_text():
    bound = TASK.for_document(document())
    assert bound.json_schema() is None
    assert bound.output_model is ChatText
    assert bound.parse_output('Paris. {"not": "json to read"}') == ChatText(
        content='Paris. {"not": "json to read"}'
    )


def test_an_answer_valid_for_the_schema_passes_every_check():
    verdicts = verdicts_for('{"city": "Paris"}', document(json_schema=SCHEMA))
    assert all(v.passed for v in verdicts.values()), verdicts
    assert set(verdicts) == {SCHEMA_VERIFIER, "response_format", "non_empty"}


def test_an_answer_outside_the_schema_fails_response_format_naming_the_field():
    verdicts = verdicts_for('{"city": "Lyon"}', document(json_schema=SCHEMA))
    check = verdicts["response_format"]
    assert not check.passed and check.required
    assert check.findings[0].startswith("city: ")


def test_an_answer_that_is_not_a_json_object_fails_the_schema_check():
    verdicts = verdicts_for('["Paris"]', document(json_schema=SCHEMA))
    assert not verdicts[SCHEMA_VERIFIER].passed
    assert not verdicts["response_format"].passed


def test_free_text_is_never_passed_as_checked():
    verdicts = verdicts_for("Paris.", document())
    assert verdicts["non_empty"].passed
    assert not verdicts["response_format"].passed
    assert verdicts["response_format"].findings == [UNCHECKED_FREE_TEXT]


def test_an_empty_free_text_answer_fails_non_empty():
    verdicts = verdicts_for(" \n", document())
    assert not verdicts["non_empty"].passed
    assert verdicts["non_empty"].findings == ["the answer is empty"]


def test_a_reviewers_answer_is_checked_by_the_registered_task():
    # A review checks an answer with the registered task type (no binding): the checks read
    # the request from the document, so they judge it the same way.
    doc = document(json_schema=SCHEMA)
    _, verdicts = verify_candidate(
        text=json.dumps({"city": "Rome"}),
        output_model=TASK.output_model,
        document=doc,
        verifiers=TASK.verifiers,
    )
    assert all(v.passed for v in verdicts)


def test_the_same_request_is_the_same_document():
    a = ChatRequest.model_validate({"messages": MESSAGES, "json_schema": SCHEMA, "max_tokens": 9})
    b = ChatRequest.model_validate(
        {"max_tokens": 9, "json_schema": dict(reversed(SCHEMA.items())), "messages": MESSAGES}
    )
    assert document_of(a) == document_of(b)
    assert parse_document(document_of(a)) == a


@pytest.mark.parametrize(
    ("doc", "phrase"),
    [
        ("Capital of France?", "document: Invalid JSON"),
        (json.dumps({"messages": []}), "messages: List should have at least 1 item"),
        (json.dumps({"json_schema": SCHEMA}), "messages: Field required"),
        (json.dumps({"messages": "hello"}), "messages: Input should be a valid array"),
        (
            json.dumps({"messages": [{"role": "tool", "content": "x"}]}),
            "messages.0.role: Input should be 'system', 'developer', 'user' or 'assistant'",
        ),
        (
            json.dumps({"messages": [{"role": "user", "content": "\u200b "}]}),
            "every message is empty",
        ),
        (document(json_schema={"type": "array"}), "json_schema: Value error, must describe an"),
        (
            document(json_schema={"type": "object", "properties": {"a": {"type": "strin"}}}),
            "json_schema: Value error, is not a valid JSON Schema: at properties/a/type",
        ),
        (
            document(json_schema={"type": "object", "$ref": "https://example.org/s.json"}),
            "may only hold local references",
        ),
        (
            json.dumps({"messages": [{"role": "user", "content": "a\u0000b"}]}),
            "messages holds a NUL character",
        ),
        (document(json_schema=nested(40)), "the schema is nested too deeply"),
        (document(max_tokens=0), "max_tokens: Input should be greater than or equal to 1"),
        (document(temperature=3), "temperature: Input should be less than or equal to 2"),
        (document(stream=True), "stream: Extra inputs are not permitted"),
    ],
    ids=[
        "not-json",
        "no-messages",
        "messages-missing",
        "messages-not-a-list",
        "unknown-role",
        "blank",
        "schema-not-an-object",
        "schema-invalid",
        "remote-ref",
        "nul",
        "deep-schema",
        "max-tokens",
        "temperature",
        "unknown-field",
    ],
)
def test_a_document_that_is_not_a_chat_request_is_refused_naming_the_field(doc, phrase):
    with pytest.raises(ValueError) as raised:
        TASK.for_document(doc)
    assert phrase in str(raised.value)
