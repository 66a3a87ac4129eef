"""The ``chat_completion`` task type: an ordinary chat request run through the queue. Its
prompt is the request's messages through the model's chat template (the engine applies it),
and its answer schema, when the request gives one, comes with each document: the registered
task type is bound to one job's request by ``for_document``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from ponder.tasktypes import TaskType
from ponder.verify import VerifierSpec
from tasks.chat_completion.checks import check_non_empty, check_response_format
from tasks.chat_completion.schema import ChatObject, ChatRequest, ChatText, parse_document

PROMPT_VERSION = "messages-1"
"""Frozen on each job in place of a template's hash: how the request's messages become the
prompt (``developer`` read as ``system``). Change it when that changes."""

STRATEGIES = frozenset({"single", "best_of_n", "self_consistency", "refine"})
"""The strategies that run on the request's own messages. ``extended_reasoning`` and ``beam``
rewrite a task's one user message and ``adaptive`` escalates to them, so a conversation of
any length does not fit them."""


@dataclass(frozen=True)
class ChatTaskType(TaskType):
    request: ChatRequest | None = None
    """The request of the one job this task type is bound to; None when registered."""

    def for_document(self, document: str) -> ChatTaskType:
        request = parse_document(document)
        return dataclasses.replace(
            self,
            request=request,
            output_model=ChatText if request.json_schema is None else ChatObject,
            max_output_tokens=request.max_tokens or self.max_output_tokens,
            temperature=self.temperature if request.temperature is None else request.temperature,
        )

    def messages(self, document: str, **extra: object) -> tuple[dict[str, str], ...]:
        request = self.request if self.request is not None else parse_document(document)
        return tuple(
            {"role": "system" if m.role == "developer" else m.role, "content": m.content}
            for m in request.messages
        )

    def json_schema(self) -> dict[str, Any] | None:
        if self.request is None:
            return super().json_schema()
        return self.request.json_schema

    def parse_output(self, text: str) -> BaseModel:
        if self.output_model is ChatText:
            return ChatText(content=text)  # free text is its own answer, not JSON
        return super().parse_output(text)

    def template_version(self) -> str:
        return PROMPT_VERSION


TASK = ChatTaskType(
    name="chat_completion",
    description="An ordinary chat request; checked against its response_format JSON schema.",
    # Registered, the task reads any object (a person's corrected answer in a review); bound
    # to a job, it reads the answer that job's request asks for.
    output_model=ChatObject,
    template=None,
    system_prompt="",
    verifiers=(
        VerifierSpec(
            "response_format",
            check_response_format,
            "The answer is valid for the request's JSON schema; free text, which nothing "
            "checks, fails it, so a person reviews it.",
        ),
        VerifierSpec("non_empty", check_non_empty, "A free-text answer is not empty."),
    ),
    max_document_chars=50_000,
    max_output_tokens=512,
    strategies=STRATEGIES,
)
