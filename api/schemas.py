"""Public request and response shapes. Table classes never go over the wire."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from ponder.jobs.contract import (
    JobBase,
    JobNotify,
    JobResult,
    Selection,
    TraceCandidate,
    TraceStep,
)
from ponder.reviews.outcome import public_answer
from ponder.storable import StorableInput


class JobCreate(StorableInput, JobBase):
    """``POST /v1/jobs``: the JSON body, or the multipart form's fields next to the file (the
    file is ``document``; ``metadata`` and ``params`` are JSON text there)."""

    model_config = ConfigDict(extra="forbid")


def _is_object(schema: dict[str, Any]) -> bool:
    return any(s.get("type") == "object" for s in schema.get("anyOf", [schema]))


def _form_field(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON schema property as a form field: sent as text, never null."""
    if _is_object(schema):
        text = f"{schema.get('description', '')} A JSON object, as JSON text.".strip()
        return {"type": "string", "description": text}
    field = {k: v for k, v in schema.items() if k != "anyOf" and not (k == "default" and v is None)}
    options = [s for s in schema.get("anyOf", []) if s.get("type") != "null"]
    return {**field, **options[0]} if len(options) == 1 else field


def _job_form_schema() -> dict[str, Any]:
    """JobCreate's fields as a form, so a field added to JobBase is accepted here too: the
    document is the file; a JSON object (``metadata``, ``params``) is a field of JSON text."""
    schema = JobCreate.model_json_schema()
    properties = {
        "file": {"type": "string", "format": "binary", "description": "A .txt or .md file."}
    }
    for name, prop in schema["properties"].items():
        if name != "document":
            properties[name] = _form_field(prop)
    required = ["file", *(name for name in schema.get("required", []) if name != "document")]
    return {"type": "object", "required": required, "properties": properties}


JOB_FORM_SCHEMA = _job_form_schema()
"""The multipart form of ``POST /v1/jobs``."""
JOB_FORM_JSON_FIELDS = frozenset(
    name for name, prop in JobCreate.model_json_schema()["properties"].items() if _is_object(prop)
)
"""Its fields whose text is parsed as JSON before ``JobCreate`` validates the form."""


class Tokens(BaseModel):
    prompt: int
    completion: int
    cached_prompt: int
    thinking: int


class JobPublic(BaseModel):
    id: str
    task: str
    status: str
    priority: int
    config: dict[str, Any]
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    result: JobResult | None
    error: str | None
    tokens: Tokens
    engine_wall_s: float
    cost: float | None
    metadata: dict[str, Any] | None
    cancel_requested: bool
    complete_by: datetime | None = None
    batch_id: str | None = None
    custom_id: str | None = None
    cached_from: str | None = Field(
        default=None,
        description="The job whose result answered this one from the cache (no engine call, "
        "zero tokens); null when it ran.",
    )
    arm: str | None = Field(
        default=None,
        description="The A/B arm the job ran in (an arm's name from the knobs file, or "
        "`control`); null when the job took no part in an experiment.",
    )
    model_requested: str | None = Field(
        default=None,
        description="The registry model the job asked for (or its task's default); null for "
        "a job submitted before the registry.",
    )
    model_used: str | None = Field(
        default=None,
        description="The registry model that runs (ran) the job: its task's fallback_model "
        "when the requested one was unhealthy.",
    )
    answer: dict[str, Any] | None = Field(
        default=None,
        description="The answer to use: the reviewed answer once a person reviewed the job "
        "(null when they rejected it), else the machine's selected output.",
    )
    provenance: Literal["machine", "human_reviewed"] = Field(
        default="machine", description="Who stands behind `answer`."
    )

    @model_validator(mode="after")
    def _answer_from_result(self) -> JobPublic:
        # Derived from the result in one place, so every route that returns a job agrees.
        stored = None if self.result is None else self.result.model_dump(mode="json")
        self.answer, self.provenance = public_answer(stored)  # type: ignore[assignment]
        return self


class JobPage(BaseModel):
    items: list[JobPublic]
    next_cursor: str | None


class TracePublic(BaseModel):
    job_id: str
    status: str
    strategy: dict[str, Any] = Field(description="The strategy's configuration frozen on the job.")
    candidates: list[TraceCandidate]
    selection: Selection | None = Field(description="The last selection of the run; null before.")
    steps: list[TraceStep]


class ErrorPublic(BaseModel):
    error: str
    detail: dict[str, Any] = Field(default_factory=dict)


class BatchCreate(StorableInput, JobNotify):
    """Options of ``POST /v1/batches``: form fields next to the file, or one ``options`` part
    holding them as a JSON object; never the query string (URLs land in access logs). The
    items are the lines of the upload; who is told (``JobNotify``) gets the batch's report."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=200)
    priority: int | None = Field(
        default=None, ge=0, le=9, description="For every item; default 7, after single jobs."
    )
    metadata: dict[str, Any] | None = None
    complete_by: AwareDatetime | None = Field(
        default=None,
        description="The batch's window, ISO 8601 with a timezone, for every item: items not "
        "started by then end `expired`, running ones end with what they have; the batch ends "
        "`expired` with the results of the items that completed.",
    )
    cache: Literal["use", "refresh", "off"] | None = Field(
        default=None,
        description="The result cache for every item whose line does not say `cache`: "
        "`use`, `refresh` or `off` (see `cache` on a job); omitted, the deployment's default.",
    )


class BatchCounts(BaseModel):
    queued: int
    running: int
    succeeded: int
    needs_review: int
    failed: int
    cancelled: int
    expired: int
    reviewed: int = 0
    """Items a person reviewed after they ended (``needs_review`` or QA-sampled)."""


class BatchPublic(BaseModel):
    id: str
    name: str | None
    source: str
    status: str = Field(
        description="queued, running, cancelling; once ended: succeeded, needs_review, "
        "completed_with_failures, failed, cancelled or expired (its `complete_by` passed "
        "with items not started)."
    )
    ended: bool
    total: int
    counts: BatchCounts
    round: int = Field(description="1, plus one per retry of the failed items.")
    priority: int
    complete_by: datetime | None = None
    created_at: datetime
    started_at: datetime | None
    cancel_requested_at: datetime | None
    finished_at: datetime | None
    webhook_url: str | None
    webhook_endpoint_id: str | None
    email: str | None
    metadata: dict[str, Any] | None
    rejected_files: list[dict[str, Any]]
    links: dict[str, str]


class BatchPage(BaseModel):
    items: list[BatchPublic]
    next_cursor: str | None = None
    """Pass as ``cursor`` for the next page; null on the last page."""


class BatchRetryPublic(BaseModel):
    retried: int
    batch: BatchPublic


class WebhookEndpointCreate(StorableInput):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2048)
    description: str | None = Field(default=None, max_length=200)
    include_content: bool = Field(
        default=False,
        description="Opt in to the document and the answer in job payloads for this endpoint.",
    )


class WebhookEndpointPublic(BaseModel):
    id: str
    url: str
    description: str | None
    include_content: bool
    created_at: datetime
    disabled_at: datetime | None
    disabled_reason: str | None
    previous_secret_expires_at: datetime | None
    secret: str | None = Field(
        default=None, description="Only in the answers to create and rotate: store it then."
    )


class DeliveryAttemptPublic(BaseModel):
    attempt: int
    status_code: int | None
    error: str | None
    duration_ms: int
    created_at: datetime


class DeliveryPublic(BaseModel):
    id: str
    webhook_id: str = Field(description="The webhook-id header: the same on every attempt.")
    channel: str
    target: str
    event_type: str
    status: str = Field(description="pending, delivered, failed or disabled.")
    job_id: str | None
    batch_id: str | None
    endpoint_id: str | None
    max_attempts: int
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    last_error: str | None
    created_at: datetime
    attempts: list[DeliveryAttemptPublic]
