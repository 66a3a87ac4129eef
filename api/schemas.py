"""Public request and response shapes. Table classes never go over the wire."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ponder.reviews.outcome import public_answer
from ponder.storable import StorableInput
from ponder.validation import check_email


class JobCreate(StorableInput):
    model_config = ConfigDict(extra="forbid")

    task: str = Field(description="Task type, e.g. contract_review or medrec_extraction.")
    document: str = Field(description="The document text.")
    strategy: str | None = Field(
        default=None,
        description="A strategy name (`ponder strategies`); default: the task's default from "
        "the knobs file, else best_of_n.",
    )
    n: int | None = Field(default=None, description="Samples for best_of_n (default 4).")
    priority: int = Field(default=5, ge=0, le=9, description="0 runs first, 9 last.")
    webhook_url: str | None = Field(
        default=None, max_length=2048, description="Signed with the tenant's secret."
    )
    webhook_endpoint_id: str | None = Field(
        default=None,
        description="A registered endpoint (POST /v1/webhooks), signed with its own secret.",
    )
    email: str | None = Field(
        default=None, max_length=254, description="One address, told when the job ends."
    )
    metadata: dict[str, Any] | None = Field(
        default=None, description="Echoed back in results and notifications."
    )
    params: dict[str, Any] | None = Field(
        default=None, description="Strategy parameters; `ponder strategies` lists them."
    )
    seed: int | None = Field(
        default=None,
        ge=0,
        le=2**31 - 1,
        description="Sampling seed for reproducible runs; sample i of a request uses seed + i.",
    )
    budget_tokens: int | None = Field(
        default=None, ge=1, description="Token budget for the whole job (prompt + output)."
    )

    @field_validator("email")
    @classmethod
    def _one_address(cls, value: str | None) -> str | None:
        return None if value is None else check_email(value)


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
    result: dict[str, Any] | None
    error: str | None
    tokens: Tokens
    engine_wall_s: float
    cost: float | None
    metadata: dict[str, Any] | None
    cancel_requested: bool
    batch_id: str | None = None
    custom_id: str | None = None
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
        self.answer, self.provenance = public_answer(self.result)  # type: ignore[assignment]
        return self


class JobPage(BaseModel):
    items: list[JobPublic]
    next_cursor: str | None


class TracePublic(BaseModel):
    job_id: str
    status: str
    strategy: dict[str, Any]
    candidates: list[dict[str, Any]]
    selection: dict[str, Any] | None
    steps: list[dict[str, Any]]


class ErrorPublic(BaseModel):
    error: str
    detail: dict[str, Any] = Field(default_factory=dict)


class BatchCreate(StorableInput):
    """Options of ``POST /v1/batches``: form fields next to the file, or one ``options`` part
    holding them as a JSON object; never the query string (URLs land in access logs). The
    items are the lines of the upload."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=200)
    priority: int | None = Field(
        default=None, ge=0, le=9, description="For every item; default 7, after single jobs."
    )
    webhook_url: str | None = Field(default=None, max_length=2048)
    webhook_endpoint_id: str | None = None
    email: str | None = Field(
        default=None, max_length=254, description="One address for the batch report."
    )
    metadata: dict[str, Any] | None = None

    @field_validator("email")
    @classmethod
    def _one_address(cls, value: str | None) -> str | None:
        return None if value is None else check_email(value)


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
        "completed_with_failures, failed or cancelled."
    )
    ended: bool
    total: int
    counts: BatchCounts
    round: int = Field(description="1, plus one per retry of the failed items.")
    priority: int
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
