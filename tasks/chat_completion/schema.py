"""What a chat-completion job reads and answers. Its document is a chat request (the messages,
the JSON schema the answer must fit, the sampling settings) as canonical JSON; its answer is a
JSON object when the request gives a schema and free text when it does not."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from typing import Any, Literal

from jsonschema import SchemaError
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from referencing import Registry

from ponder.validation import check_value, is_blank, validation_problems

MAX_MESSAGES = 256

Role = Literal["system", "developer", "user", "assistant"]
"""OpenAI's roles that carry text; ``developer`` is its newer name for ``system``. Tool and
function turns are refused: this task calls no tools."""


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role
    content: str


class ChatRequest(BaseModel):
    """A job's document, as canonical JSON (``document_of``): what shapes the answer, and
    nothing else (Ponder's own options are the job's)."""

    model_config = ConfigDict(extra="forbid")

    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    json_schema: dict[str, Any] | None = None
    """The answer's JSON schema, whose root is an object; None: the answer is free text."""
    max_tokens: int | None = Field(default=None, ge=1)
    """Output tokens per sample; None: the task's default (the settings' limit applies)."""
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    """None: the task's default."""

    @field_validator("messages")
    @classmethod
    def _some_text(cls, messages: list[ChatMessage]) -> list[ChatMessage]:
        # The document string was checked whole; its JSON escapes can still decode to a NUL.
        check_value("messages", [m.content for m in messages])
        if all(is_blank(m.content) for m in messages):
            raise ValueError("every message is empty: send the conversation's text")
        return messages

    @field_validator("json_schema")
    @classmethod
    def _a_schema_of_an_object(cls, schema: dict[str, Any] | None) -> dict[str, Any] | None:
        if schema is not None:
            check_answer_schema(schema)
        return schema


class ChatObject(BaseModel):
    """An answer to a request with a schema: any JSON object, checked against the request's
    schema by the ``response_format`` verifier (its fields come with each request)."""

    model_config = ConfigDict(extra="allow")


class ChatText(BaseModel):
    """An answer to a request without a schema: the text as the model wrote it."""

    model_config = ConfigDict(extra="forbid")

    content: str


def parse_document(document: str) -> ChatRequest:
    """The chat request a job's document holds; ``ValueError`` naming the field that is wrong
    (never quoting a value: the messages may hold PHI)."""
    try:
        return ChatRequest.model_validate_json(document)
    except ValidationError as exc:
        raise ValueError("; ".join(validation_problems(exc, whole="document"))) from None


def document_of(request: ChatRequest) -> str:
    """Canonical JSON: the same request always gives the same document (and cache key)."""
    return json.dumps(
        request.model_dump(exclude_none=True),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )


def check_answer_schema(schema: dict[str, Any]) -> None:
    """Raise ``ValueError`` unless ``schema`` is a valid JSON Schema of an object whose
    references all point inside it, nested as deep as any request field may be. Answers
    are stored as JSON objects, and a remote ``$ref`` is never fetched."""
    check_value("the schema", schema)
    if schema.get("type") != "object":
        raise ValueError(
            'must describe an object ("type": "object" at its root): the answer is a JSON object'
        )
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(part) for part in exc.absolute_path) or "its root"
        raise ValueError(
            f"is not a valid JSON Schema: at {where} it breaks the meta-schema's "
            f"{exc.validator!r} rule"
        ) from None
    for ref in _refs(schema):
        if not ref.startswith("#"):
            raise ValueError("may only hold local references ($ref starting with '#')")


def _refs(schema: Any) -> Iterator[str]:
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                yield ref
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


@functools.lru_cache(maxsize=32)
def answer_validator(document: str) -> Validator | None:
    """The validator of the answers to the request in ``document``; None for free text. Kept
    for the few documents in flight: every candidate of a job is checked against one."""
    schema = parse_document(document).json_schema
    if schema is None:
        return None
    # An empty registry: a reference outside the schema is never fetched.
    validator: Validator = validator_for(schema)(schema, registry=Registry())
    return validator
