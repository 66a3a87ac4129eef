"""The ``/v1/chat/completions`` request kind: an ordinary chat-completions body becomes a job of
the ``chat_completion`` task (``chat_job_fields``), and the job, once answered, a
``chat.completion`` object (``chat_completion_body``)."""

from __future__ import annotations

import json
import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import object_session
from sqlmodel import Session

from ponder.config import Settings, get_settings
from ponder.errors import InvalidRequest
from ponder.models import Candidate, Job, JobStatus
from ponder.validation import validation_problems
from tasks.chat_completion import TASK
from tasks.chat_completion.schema import (
    MAX_MESSAGES,
    ChatMessage,
    ChatRequest,
    Role,
    check_answer_schema,
    document_of,
    parse_document,
)

DEFAULT_STRATEGY = "single"
"""What a chat request runs with unless its ``ponder`` field asks for another: one sample, as
the hosted API gives, still checked against the request's schema."""

ANSWERED = frozenset({JobStatus.succeeded, JobStatus.needs_review, JobStatus.reviewed})


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Message(_Body):
    role: Role
    content: str
    name: str | None = None
    """Accepted and not used: the chat template has no place for it."""

    @field_validator("content", mode="before")
    @classmethod
    def _text_parts(cls, content: Any) -> Any:
        """OpenAI's list of content parts, of which text parts are supported."""
        if not isinstance(content, list):
            return content
        texts = []
        for part in content:
            if not (
                isinstance(part, dict)
                and part.get("type") == "text"
                and isinstance(part.get("text"), str)
            ):
                raise ValueError(
                    'each content part must be a text part {"type": "text", "text": "..."}; '
                    "images, audio and files are not supported"
                )
            texts.append(part["text"])
        return "\n".join(texts)


class _JsonSchema(_Body):
    name: str | None = None
    description: str | None = None
    schema_: dict[str, Any] = Field(alias="schema")
    strict: bool | None = None
    """Accepted: an answer is always held to the schema by structured decoding."""


class _ResponseFormat(_Body):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: _JsonSchema | None = None


class PonderOptions(_Body):
    """The ``ponder`` field of a chat body: how Ponder runs the request."""

    strategy: str | None = None
    """A Ponder strategy (default ``single``); those that fit a chat: single, best_of_n,
    self_consistency, refine."""
    n: int | None = None
    """Samples the strategy draws (best_of_n, self_consistency); the answer is still one."""
    params: dict[str, Any] | None = None
    budget_tokens: int | None = None


class ChatCompletionBody(_Body):
    """The chat-completions fields Ponder runs. Others (tools, stop, top_p, logprobs,
    streaming...) are refused rather than ignored: each would change the answer."""

    model: str
    messages: list[_Message] = Field(min_length=1, max_length=MAX_MESSAGES)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    n: int | None = Field(default=None, ge=1)
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)
    response_format: _ResponseFormat | None = None
    ponder: PonderOptions | None = None
    user: str | None = None
    """Accepted and not used (the hosted API's end-user id)."""


SUPPORTED = tuple(ChatCompletionBody.model_fields)


def chat_job_fields(body: dict[str, Any], *, settings: Settings | None = None) -> dict[str, Any]:
    """The job fields (``BatchItem``'s, ``JobRequest``'s) of a chat-completions ``body``:
    task ``chat_completion``, the request as its document, and the ``ponder`` options.
    Raises ``InvalidRequest`` naming the field that is wrong; the job fields are checked
    further by ``frozen_config`` like any job's."""
    settings = settings or get_settings()
    try:
        chat = ChatCompletionBody.model_validate(body)
    except ValidationError as exc:
        raise _invalid_body(exc) from None
    served = served_model_names(settings)
    if chat.model not in served:
        raise InvalidRequest(f"model: unknown model; this server runs {served[0]!r}")
    if chat.n not in (None, 1):
        raise InvalidRequest(
            "n: a Ponder job answers with one checked choice; send n=1 (or leave it out) and "
            'ask for more samples to choose from with "ponder": {"strategy": "best_of_n", '
            '"n": ...}'
        )
    max_tokens = _max_tokens(chat, settings)
    try:
        request = ChatRequest(
            messages=[ChatMessage(role=m.role, content=m.content) for m in chat.messages],
            json_schema=_answer_schema(chat.response_format),
            max_tokens=max_tokens,
            temperature=chat.temperature,
        )
    except ValidationError as exc:
        raise _invalid_body(exc) from None
    ponder = chat.ponder or PonderOptions()
    fields: dict[str, Any] = {
        "task": TASK.name,
        "document": document_of(request),
        "strategy": ponder.strategy or DEFAULT_STRATEGY,
        "n": ponder.n,
        "params": ponder.params,
        "budget_tokens": ponder.budget_tokens,
        "seed": chat.seed,
    }
    return {k: v for k, v in fields.items() if v is not None}


def _invalid_body(exc: ValidationError) -> InvalidRequest:
    """Pydantic's problems, an unsupported field said as such (never its value)."""
    problems = []
    top_level = False
    for error, problem in zip(exc.errors(), validation_problems(exc, whole="body"), strict=True):
        if error["type"] == "extra_forbidden":
            problem = f"{'.'.join(map(str, error['loc']))}: not supported"
            top_level = top_level or len(error["loc"]) == 1
        problems.append(problem)
    if top_level:
        problems.append(f"the supported fields are {', '.join(SUPPORTED)}")
    return InvalidRequest("invalid chat completion request: " + "; ".join(problems))


def served_model_names(settings: Settings) -> list[str]:
    """The names a request may give as ``model``, the engine's own name first: the in-process
    engine's model directory's name (as it reports it) or the remote engine's served name,
    and the configured value itself."""
    configured = settings.model_path if settings.engine.kind == "vllm" else settings.engine.model
    return list(dict.fromkeys([_served_name(configured, settings.engine.kind), configured]))


def _served_name(model: str, engine: str) -> str:
    return (os.path.basename(model.rstrip("/")) or model) if engine == "vllm" else model


def _max_tokens(chat: ChatCompletionBody, settings: Settings) -> int | None:
    given = {v for v in (chat.max_tokens, chat.max_completion_tokens) if v is not None}
    if len(given) > 1:
        raise InvalidRequest("max_tokens and max_completion_tokens differ: send one of them")
    max_tokens = given.pop() if given else None
    limit = settings.limits.max_tokens_per_sample
    if max_tokens is not None and max_tokens > limit:
        raise InvalidRequest(f"max_tokens: at most {limit} on this server, got {max_tokens}")
    return max_tokens


def _answer_schema(response_format: _ResponseFormat | None) -> dict[str, Any] | None:
    """The JSON schema the answer must fit; None for free text."""
    if response_format is None or response_format.type == "text":
        if response_format is not None and response_format.json_schema is not None:
            raise InvalidRequest('response_format.json_schema goes with "type": "json_schema"')
        return None
    if response_format.type == "json_object":
        if response_format.json_schema is not None:
            raise InvalidRequest('response_format.json_schema goes with "type": "json_schema"')
        return {"type": "object"}
    if response_format.json_schema is None:
        raise InvalidRequest(
            'response_format.json_schema is required with "type": "json_schema": '
            '{"name": ..., "schema": {...}}'
        )
    schema = response_format.json_schema.schema_
    try:
        check_answer_schema(schema)
    except ValueError as exc:
        raise InvalidRequest(f"response_format.json_schema.schema {exc}") from None
    return schema


def chat_completion_body(job: Job, *, session: Session | None = None) -> dict[str, Any]:
    """The ``chat.completion`` object of an answered ``chat_completion`` job (succeeded,
    needs_review or reviewed): one choice, the job's tokens as usage, and a ``ponder`` field
    saying whether the answer was checked. The content is null when the job has no answer
    (no candidate fitted the schema; a reviewer rejected it). ``session`` (by default the
    job's own) reads the finish reason of a free-text answer, which the job row does not
    hold. Raises ``ValueError`` for a job that has not answered."""
    if job.task != TASK.name:
        raise ValueError(f"job {job.id} is a {job.task} job, not {TASK.name}")
    if job.status not in ANSWERED:
        raise ValueError(f"job {job.id} is {job.status}: it has no answer")
    result = job.result or {}
    review = result.get("review") or {}
    answer = review.get("answer") if review else result.get("output")
    free_text = parse_document(job.document).json_schema is None
    content: str | None
    if answer is None:
        content = None
    elif free_text:
        content = str(answer.get("content", ""))
    else:
        content = json.dumps(answer, ensure_ascii=False, separators=(",", ":"))
    return {
        "id": f"chatcmpl-{job.id}",
        "object": "chat.completion",
        "created": int((job.finished_at or job.created_at).timestamp()),
        "model": _served_name(str(job.config.get("model", "")), str(job.config.get("engine"))),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": _finish_reason(job, session, free_text and not review),
            }
        ],
        "usage": {
            "prompt_tokens": job.prompt_tokens,
            "completion_tokens": job.completion_tokens,
            "total_tokens": job.prompt_tokens + job.completion_tokens,
        },
        "ponder": {
            "job_id": job.id,
            "status": job.status,
            # Checked: it passed every required check, or a person stood behind it.
            "checked": job.status == JobStatus.succeeded
            or (job.status == JobStatus.reviewed and answer is not None),
            "failing_checks": [c.get("verifier") for c in result.get("failing_checks") or ()],
            "review_decision": review.get("decision"),
            "cached_from": job.cached_from,
        },
    }


def _finish_reason(job: Job, session: Session | None, may_be_cut: bool) -> str:
    """``length`` when the selected free-text answer ran out of tokens, else ``stop``. An answer
    under a schema is complete by construction (structured decoding closes it, and a cut one
    does not parse), and a person's answer is whole."""
    reader: OrmSession | None = session or object_session(job)
    if not may_be_cut or reader is None or job.selected_candidate_id is None:
        return "stop"
    candidate = reader.get(Candidate, job.selected_candidate_id)
    return "length" if candidate is not None and candidate.finish_reason == "length" else "stop"
