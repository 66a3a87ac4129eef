"""SQLModel tables: tenants and keys, jobs, candidates, verdicts, trace events, notifications.

Table classes never go over the wire; ``api/schemas.py`` holds the public shapes.
"""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


def _ts(nullable: bool = True, **kw: Any) -> Any:
    return Field(
        default=None, sa_column=sa.Column(sa.DateTime(timezone=True), nullable=nullable, **kw)
    )


def _created() -> Any:
    return Field(
        default_factory=utcnow,
        sa_column=sa.Column(
            sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )


def _json(nullable: bool = True) -> Any:
    return Field(default=None, sa_column=sa.Column(JSONB, nullable=nullable))


class JobStatus(enum.StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    needs_review = "needs_review"
    failed = "failed"
    cancelled = "cancelled"
    expired = "expired"

    @property
    def terminal(self) -> bool:
        return self not in (JobStatus.queued, JobStatus.running)


TERMINAL_STATUSES = tuple(s.value for s in JobStatus if s.terminal)


class Tenant(SQLModel, table=True):
    __tablename__ = "tenants"
    id: str = Field(default_factory=new_id, primary_key=True)
    name: str = Field(sa_column=sa.Column(sa.String(200), nullable=False, unique=True))
    webhook_secret: str = Field(sa_column=sa.Column(sa.String(100), nullable=False))
    """Signing secret (``whsec_…``) for this tenant's webhooks; needed in clear to sign."""
    created_at: datetime = _created()


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_keys"
    id: str = Field(default_factory=new_id, primary_key=True)
    tenant_id: str = Field(foreign_key="tenants.id", index=True)
    key_hash: str = Field(sa_column=sa.Column(sa.String(64), nullable=False, unique=True))
    """SHA-256 of the key; the key itself is shown once and never stored."""
    prefix: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    created_at: datetime = _created()
    revoked_at: datetime | None = _ts()


class Job(SQLModel, table=True):
    __tablename__ = "jobs"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "idempotency_key", name="uq_jobs_tenant_idempotency"),
        sa.Index("ix_jobs_tenant_created", "tenant_id", "created_at", "id"),
        sa.Index("ix_jobs_status_enqueued", "status", "enqueued_at"),
    )
    id: str = Field(default_factory=new_id, primary_key=True)
    tenant_id: str = Field(foreign_key="tenants.id")
    task: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    status: str = Field(
        default=JobStatus.queued.value, sa_column=sa.Column(sa.String(20), nullable=False)
    )
    priority: int = 5
    idempotency_key: str | None = Field(default=None, sa_column=sa.Column(sa.String(200)))
    request_hash: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    config: dict[str, Any] = _json(nullable=False)
    """Strategy, n, sampling, model, verifier set, template version: frozen at submission."""
    document: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    metadata_: dict[str, Any] | None = Field(default=None, sa_column=sa.Column("metadata", JSONB))
    webhook_url: str | None = Field(default=None, sa_column=sa.Column(sa.String(2048)))
    email: str | None = Field(default=None, sa_column=sa.Column(sa.String(320)))
    attempts: int = 0
    lease_owner: str | None = Field(default=None, sa_column=sa.Column(sa.String(200)))
    lease_token: int = 0
    """Fencing token: incremented by every claim; writes carry it and fail if it moved on."""
    lease_expires_at: datetime | None = _ts()
    cancel_requested: bool = False
    created_at: datetime = _created()
    enqueued_at: datetime | None = _ts()
    started_at: datetime | None = _ts()
    finished_at: datetime | None = _ts()
    result: dict[str, Any] | None = _json()
    selected_candidate_id: str | None = None
    error: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    thinking_tokens: int = 0
    """Part of completion_tokens: spent on a thinking phase rather than an answer."""
    engine_wall_s: float = 0.0
    cost: float | None = None
    """From the cost model in the settings, when one is configured."""


class Candidate(SQLModel, table=True):
    __tablename__ = "candidates"
    __table_args__ = (sa.UniqueConstraint("job_id", "step", "idx", name="uq_candidates_step_idx"),)
    id: str = Field(default_factory=new_id, primary_key=True)
    job_id: str = Field(foreign_key="jobs.id", index=True)
    step: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    """The strategy step that produced it (``sample``, ``round-2``): a retry reuses a step."""
    idx: int
    attempt: int
    text: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    parsed: dict[str, Any] | None = _json()
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    mean_logprob: float | None = None
    min_logprob: float | None = None
    finish_reason: str | None = Field(default=None, sa_column=sa.Column(sa.String(32)))
    score: float = 0.0
    passed_required: bool = False
    engine_started_at: datetime | None = _ts()
    engine_finished_at: datetime | None = _ts()
    created_at: datetime = _created()


class Verdict(SQLModel, table=True):
    __tablename__ = "verdicts"
    __table_args__ = (
        sa.UniqueConstraint("candidate_id", "verifier", name="uq_verdicts_candidate"),
    )
    id: str = Field(default_factory=new_id, primary_key=True)
    candidate_id: str = Field(foreign_key="candidates.id", index=True)
    verifier: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    passed: bool
    score: float
    required: bool
    weight: float
    findings: list[str] = _json(nullable=False)


class TraceEvent(SQLModel, table=True):
    __tablename__ = "trace_events"
    __table_args__ = (sa.UniqueConstraint("job_id", "seq", name="uq_trace_seq"),)
    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(foreign_key="jobs.id", index=True)
    seq: int
    attempt: int
    kind: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    data: dict[str, Any] = _json(nullable=False)
    created_at: datetime = _created()


class Notification(SQLModel, table=True):
    """Outbox row, written in the transaction that ends the job."""

    __tablename__ = "notifications"
    id: str = Field(default_factory=new_id, primary_key=True)
    job_id: str = Field(foreign_key="jobs.id", index=True)
    tenant_id: str = Field(foreign_key="tenants.id")
    channel: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    target: str = Field(sa_column=sa.Column(sa.String(2048), nullable=False))
    event_type: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    message_id: str = Field(sa_column=sa.Column(sa.String(64), nullable=False, unique=True))
    """The ``webhook-id``: stable across every retry of this delivery."""
    payload: dict[str, Any] = _json(nullable=False)
    status: str = Field(default="pending", sa_column=sa.Column(sa.String(16), nullable=False))
    attempts: int = 0
    next_attempt_at: datetime | None = _ts()
    last_error: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    created_at: datetime = _created()
    delivered_at: datetime | None = _ts()


class DeliveryAttempt(SQLModel, table=True):
    __tablename__ = "delivery_attempts"
    id: int | None = Field(default=None, primary_key=True)
    notification_id: str = Field(foreign_key="notifications.id", index=True)
    attempt: int
    status_code: int | None = None
    error: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    duration_ms: int = 0
    created_at: datetime = _created()
