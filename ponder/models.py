"""SQLModel tables: tenants and keys, jobs, candidates, verdicts, trace events, notifications,
webhook endpoints, batches, the files nightly runs have taken from their inboxes, and the
append-only access audit.

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
    reviewed = "reviewed"
    """A person decided on a ``needs_review`` job (or a QA-sampled ``succeeded`` one): the
    review record (``reviews``) holds the decision and the answer."""

    @property
    def terminal(self) -> bool:
        return self not in (JobStatus.queued, JobStatus.running)


TERMINAL_STATUSES = tuple(s.value for s in JobStatus if s.terminal)


class Scope(enum.StrEnum):
    submit = "submit"
    read = "read"
    admin = "admin"


ALL_SCOPES = tuple(s.value for s in Scope)


class Tenant(SQLModel, table=True):
    __tablename__ = "tenants"
    id: str = Field(default_factory=new_id, primary_key=True)
    name: str = Field(sa_column=sa.Column(sa.String(200), nullable=False, unique=True))
    webhook_secret: str = Field(sa_column=sa.Column(sa.String(100), nullable=False))
    """Signing secret (``whsec_…``) for this tenant's webhooks; needed in clear to sign."""
    retention_days: int | None = None
    """Days a job's content is kept after it ends; None: ``retention.default_days``."""
    created_at: datetime = _created()


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_keys"
    id: str = Field(default_factory=new_id, primary_key=True)
    tenant_id: str = Field(foreign_key="tenants.id", index=True)
    key_hash: str = Field(sa_column=sa.Column(sa.String(64), nullable=False, unique=True))
    """SHA-256 of the key; the key itself is shown once and never stored."""
    prefix: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    scopes: list[str] = Field(
        default_factory=lambda: list(ALL_SCOPES),
        sa_column=sa.Column(
            sa.ARRAY(sa.String(16)), nullable=False, server_default="{submit,read,admin}"
        ),
    )
    """What the key may do: ``submit`` (write jobs and batches), ``read`` (their content),
    ``admin`` (keys, audit, deletion, legal holds, webhook endpoints)."""
    created_at: datetime = _created()
    expires_at: datetime | None = _ts()
    revoked_at: datetime | None = _ts()
    last_used_at: datetime | None = _ts()
    """Updated at most once a minute per key and process, so authentication stays cheap."""


class Job(SQLModel, table=True):
    __tablename__ = "jobs"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "idempotency_key", name="uq_jobs_tenant_idempotency"),
        sa.Index("ix_jobs_tenant_created", "tenant_id", "created_at", "id"),
        sa.Index("ix_jobs_status_enqueued", "status", "enqueued_at"),
        sa.UniqueConstraint("batch_id", "custom_id", name="uq_jobs_batch_custom_id"),
        sa.Index("ix_jobs_batch_status", "batch_id", "status"),
        sa.Index("ix_jobs_batch_index", "batch_id", "batch_index"),
        sa.Index(
            "ix_jobs_unpurged_finished",
            "finished_at",
            postgresql_where=sa.text("purged_at IS NULL"),
        ),
        # The alert check reads the jobs that ended in its window.
        sa.Index("ix_jobs_finished_at", "finished_at"),
        # A tenant's jobs of one status, newest first, however rare the status in its history.
        sa.Index("ix_jobs_tenant_status_created", "tenant_id", "status", "created_at", "id"),
        # The queued jobs with a deadline: the reconciler expires those past it, and a claim
        # looks among them for an earlier one to run first (migration 0009).
        sa.Index(
            "ix_jobs_queued_complete_by",
            "complete_by",
            postgresql_where=sa.text("status = 'queued' AND complete_by IS NOT NULL"),
        ),
        # The result cache (ponder/jobs/cache.py): a tenant's finished answers for a key, and
        # its runs in flight for a key, each among the few rows of that state (migration 0010).
        sa.Index(
            "ix_jobs_cache_key_finished",
            "tenant_id",
            "cache_key",
            postgresql_where=sa.text(
                "status IN ('succeeded', 'reviewed') AND cache_key IS NOT NULL"
            ),
        ),
        sa.Index(
            "ix_jobs_cache_key_running",
            "tenant_id",
            "cache_key",
            postgresql_where=sa.text("status = 'running' AND cache_key IS NOT NULL"),
        ),
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
    webhook_endpoint_id: str | None = Field(default=None, foreign_key="webhook_endpoints.id")
    batch_id: str | None = Field(default=None, foreign_key="batches.id")
    batch_index: int | None = None
    """The item's line number in the batch upload: results come back in this order."""
    custom_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(200)))
    """The caller's id for a batch item, unique within its batch."""
    attempts: int = 0
    lease_owner: str | None = Field(default=None, sa_column=sa.Column(sa.String(200)))
    lease_token: int = 0
    """Fencing token: incremented by every claim; writes carry it and fail if it moved on."""
    lease_expires_at: datetime | None = _ts()
    crowd_deaths: int = Field(
        default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0")
    )
    """Runs that lost their worker while other jobs were in flight on it: not charged."""
    lone_deaths: int = Field(
        default=0, sa_column=sa.Column(sa.Integer, nullable=False, server_default="0")
    )
    """Runs that lost their worker with no other job in flight on it: charged as attempts."""
    died_on: str | None = Field(default=None, sa_column=sa.Column(sa.String(200)))
    """The worker (``host:pid:boot``) of the last run that died: the crowd of a later death
    on that worker is counted from it (ponder/jobs/deaths.py)."""
    quarantined_at: datetime | None = _ts()
    """When the job was put in quarantine: it then runs only on the ``quarantine`` queue."""
    cancel_requested: bool = False
    complete_by: datetime | None = _ts()
    """The caller's deadline: not started by then, the job ends ``expired``; running at it,
    the run stops before its next engine call and ends with what it has."""
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
    charges: int = 0
    """Engine calls charged to the counts above; moves with them in one statement, so a retried
    charge can tell whether its first try landed."""
    cost: float | None = None
    """From the cost model in the settings, when one is configured."""
    usage_by_model: dict[str, Any] = Field(
        default_factory=dict,
        sa_column=sa.Column(JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    )
    """``{model: {prompt_tokens, completion_tokens, engine_wall_s}}``: what each registry model
    spent on the job (an escalation runs it on several), priced per model when it ends."""
    legal_hold_at: datetime | None = _ts()
    """Set while a legal hold exempts the job from the retention purge and from deletion."""
    legal_hold_by: str | None = Field(default=None, sa_column=sa.Column(sa.String(36)))
    """The API key id that placed the hold."""
    purged_at: datetime | None = _ts()
    """When its content (document, result, candidates, trace, notifications) was blanked."""
    deleted_at: datetime | None = _ts()
    """Tombstone: when a caller deleted it (``DELETE /v1/jobs/{id}``)."""
    deleted_by: str | None = Field(default=None, sa_column=sa.Column(sa.String(36)))
    """Tombstone: the API key id that deleted it."""
    qa_sampled: bool = Field(
        default=False, sa_column=sa.Column(sa.Boolean, nullable=False, server_default=sa.false())
    )
    """Picked, when it ended ``succeeded``, for QA review (the task's ``qa_sample_rate``)."""
    review_locked_by: str | None = Field(default=None, sa_column=sa.Column(sa.String(36)))
    """The reviewer holding the review lock (a soft lock: ``review_lock_expires_at``)."""
    review_lock_expires_at: datetime | None = _ts()
    cache_key: str | None = Field(default=None, sa_column=sa.Column(sa.String(64)))
    """Task, document hash and frozen configuration (ponder/jobs/cache.py), set at its first
    claim; null when submitted with ``cache: "off"``."""
    cached_from: str | None = Field(default=None, sa_column=sa.Column(sa.String(36)))
    """The job whose result answered this one from the cache (it made no engine call)."""


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
    model: str | None = Field(default=None, sa_column=sa.Column(sa.String(40)))
    """The registry model whose run made it (null: recorded before migration 0013)."""


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
    __table_args__ = (
        # The reconciler finds the few deliveries whose retry is due among all of them.
        sa.Index(
            "ix_notifications_due",
            "next_attempt_at",
            postgresql_where=sa.text("status = 'pending'"),
        ),
    )
    id: str = Field(default_factory=new_id, primary_key=True)
    job_id: str | None = Field(default=None, foreign_key="jobs.id", index=True)
    batch_id: str | None = Field(default=None, foreign_key="batches.id", index=True)
    """Set on a batch report; ``job_id`` on a job's own notification."""
    tenant_id: str = Field(foreign_key="tenants.id")
    endpoint_id: str | None = Field(default=None, foreign_key="webhook_endpoints.id")
    """A registered endpoint (signed with its secret); None for a job's ``webhook_url``
    (signed with the tenant's secret) and for email."""
    channel: str = Field(sa_column=sa.Column(sa.String(16), nullable=False))
    target: str = Field(sa_column=sa.Column(sa.String(2048), nullable=False))
    event_type: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    message_id: str = Field(sa_column=sa.Column(sa.String(64), nullable=False, unique=True))
    """The ``webhook-id``: stable across every retry of this delivery."""
    payload: dict[str, Any] = _json(nullable=False)
    status: str = Field(default="pending", sa_column=sa.Column(sa.String(16), nullable=False))
    """``pending``, ``delivered``, ``failed`` (attempts used up) or ``disabled`` (the receiver
    answered 410, or its endpoint was disabled or deleted)."""
    attempts: int = 0
    max_attempts: int = Field(
        default=10, sa_column=sa.Column(sa.Integer, nullable=False, server_default="10")
    )
    """Attempts allowed: the retry schedule's length plus one; a manual redelivery adds one."""
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


class WebhookEndpoint(SQLModel, table=True):
    """A receiver registered by a tenant, with its own signing secret."""

    __tablename__ = "webhook_endpoints"
    id: str = Field(default_factory=new_id, primary_key=True)
    tenant_id: str = Field(foreign_key="tenants.id", index=True)
    url: str = Field(sa_column=sa.Column(sa.String(2048), nullable=False))
    description: str | None = Field(default=None, sa_column=sa.Column(sa.String(200)))
    secret: str = Field(sa_column=sa.Column(sa.String(100), nullable=False))
    previous_secret: str | None = Field(default=None, sa_column=sa.Column(sa.String(100)))
    """Still signs (as a second signature) until ``previous_secret_expires_at``."""
    previous_secret_expires_at: datetime | None = _ts()
    include_content: bool = False
    """The tenant's opt-in to the document and the answer in this endpoint's job payloads."""
    created_at: datetime = _created()
    disabled_at: datetime | None = _ts()
    disabled_reason: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    deleted_at: datetime | None = _ts()


class Batch(SQLModel, table=True):
    """Many items (jobs) submitted together; its state is derived from its items' states."""

    __tablename__ = "batches"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "idempotency_key", name="uq_batches_tenant_idempotency"),
        sa.Index("ix_batches_tenant_created", "tenant_id", "created_at"),
    )
    id: str = Field(default_factory=new_id, primary_key=True)
    tenant_id: str = Field(foreign_key="tenants.id")
    source: str = Field(default="api", sa_column=sa.Column(sa.String(16), nullable=False))
    """``api`` or ``nightly``."""
    name: str | None = Field(default=None, sa_column=sa.Column(sa.String(200)))
    item_count: int = 0
    priority: int = 7
    idempotency_key: str | None = Field(default=None, sa_column=sa.Column(sa.String(200)))
    request_hash: str | None = Field(default=None, sa_column=sa.Column(sa.String(64)))
    webhook_url: str | None = Field(default=None, sa_column=sa.Column(sa.String(2048)))
    webhook_endpoint_id: str | None = Field(default=None, foreign_key="webhook_endpoints.id")
    email: str | None = Field(default=None, sa_column=sa.Column(sa.String(320)))
    metadata_: dict[str, Any] | None = Field(default=None, sa_column=sa.Column("metadata", JSONB))
    rejected_files: list[dict[str, Any]] | None = _json()
    """Inbox files a nightly run could not submit (``file``, ``error``); listed in the report."""
    round: int = 1
    """1, then one more per retry: each round that ends sends its own report."""
    complete_by: datetime | None = _ts()
    """The batch's window, set on every item as its ``complete_by``."""
    created_at: datetime = _created()
    cancel_requested_at: datetime | None = _ts()
    finished_at: datetime | None = _ts()
    """When the last item of the current round ended."""
    item_counts: dict[str, int] = Field(
        default_factory=dict,
        sa_column=sa.Column(JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    )
    """Items per job state, kept by a trigger on ``jobs`` (migration 0008) in the transaction
    that moves an item: a summary reads one row whatever the batch's size."""
    items_started_at: datetime | None = _ts()
    """When the first item started (kept by the same trigger)."""
    legal_hold_at: datetime | None = _ts()
    """Set while a legal hold exempts the batch and all its items from purge and deletion."""
    legal_hold_by: str | None = Field(default=None, sa_column=sa.Column(sa.String(36)))
    purged_at: datetime | None = _ts()
    deleted_at: datetime | None = _ts()
    deleted_by: str | None = Field(default=None, sa_column=sa.Column(sa.String(36)))


class InboxFile(SQLModel, table=True):
    """A file a nightly run took from its inbox, by content hash, so it is submitted once."""

    __tablename__ = "inbox_files"
    __table_args__ = (
        sa.UniqueConstraint("tenant_id", "source", "content_hash", name="uq_inbox_files_hash"),
    )
    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str = Field(foreign_key="tenants.id")
    source: str = Field(sa_column=sa.Column(sa.String(100), nullable=False))
    """The nightly run's name."""
    content_hash: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    file_name: str = Field(sa_column=sa.Column(sa.String(1024), nullable=False))
    batch_id: str | None = Field(default=None, foreign_key="batches.id")
    created_at: datetime = _created()


class AuditEvent(SQLModel, table=True):
    """Who read or changed what: one row per access to a job's or batch's content and per
    write. Append-only: a trigger (migration 0005) refuses UPDATE, DELETE and TRUNCATE. No
    foreign keys, so the record outlives the rows it names; no content, only ids."""

    __tablename__ = "audit_events"
    __table_args__ = (sa.Index("ix_audit_events_tenant_created", "tenant_id", "created_at", "id"),)
    id: str = Field(default_factory=new_id, primary_key=True)
    tenant_id: str = Field(sa_column=sa.Column(sa.String(36), nullable=False))
    key_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(36)))
    """The API key that acted; None for the system (the retention purge)."""
    action: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    """``job.read``, ``job.trace``, ``job.submit``, ``job.delete``, ``key.create``, ..."""
    job_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(36)))
    batch_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(36)))
    target_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(36)))
    """What else the action named: a key id, a delivery id, a webhook endpoint id."""
    address: str | None = Field(default=None, sa_column=sa.Column(sa.String(64)))
    """The client's address as the API saw it."""
    created_at: datetime = _created()


class Reviewer(SQLModel, table=True):
    """A person who reviews a tenant's jobs in the workspace; signs in with email and password
    (argon2 hash)."""

    __tablename__ = "reviewers"
    __table_args__ = (sa.UniqueConstraint("tenant_id", "email", name="uq_reviewers_tenant_email"),)
    id: str = Field(default_factory=new_id, primary_key=True)
    tenant_id: str = Field(foreign_key="tenants.id", index=True)
    email: str = Field(sa_column=sa.Column(sa.String(320), nullable=False))
    password_hash: str = Field(sa_column=sa.Column(sa.String(200), nullable=False))
    created_at: datetime = _created()
    disabled_at: datetime | None = _ts()


class ReviewDecision(enum.StrEnum):
    approved = "approved"
    """The selected answer, as it is."""
    approved_candidate = "approved_candidate"
    """Another candidate's answer, as it is."""
    corrected = "corrected"
    """An answer the reviewer edited."""
    rejected = "rejected"
    """No usable answer."""


class Review(SQLModel, table=True):
    """A person's decision on a job. Content columns (answers, diff, reason, verdicts) are
    blanked with the job's content by retention."""

    __tablename__ = "reviews"
    __table_args__ = (sa.Index("ix_reviews_tenant_created", "tenant_id", "created_at"),)
    id: str = Field(default_factory=new_id, primary_key=True)
    job_id: str = Field(foreign_key="jobs.id", index=True)
    tenant_id: str = Field(foreign_key="tenants.id")
    reviewer_id: str | None = Field(default=None, foreign_key="reviewers.id")
    """The reviewer who decided in the workspace; None when an API key did."""
    api_key_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(36)))
    decision: str = Field(sa_column=sa.Column(sa.String(32), nullable=False))
    candidate_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(36)))
    """The candidate approved (``approved``, ``approved_candidate``)."""
    answer_before: dict[str, Any] | None = _json()
    """The machine's selected answer."""
    answer_after: dict[str, Any] | None = _json()
    """The answer the decision stands for; None for ``rejected``."""
    diff: list[dict[str, Any]] | None = _json()
    """Field-level changes: ``{"path", "before", "after"}`` each."""
    reason: str | None = Field(default=None, sa_column=sa.Column(sa.Text))
    verdicts: list[dict[str, Any]] | None = _json()
    """The deterministic verifiers' verdicts on ``answer_after``."""
    was_sampled: bool = False
    """The job was a QA-sampled ``succeeded`` job (counts toward the precision estimate)."""
    seconds_to_review: float | None = None
    """From the reviewer's lock being claimed (or the job's end) to the decision."""
    created_at: datetime = _created()


class MetricDelta(SQLModel, table=True):
    """A change to a metric counter, appended by the triggers of migration 0008 in the
    transaction of its event; folded into ``metric_totals`` by ponder/ops/rollups.py."""

    __tablename__ = "metric_deltas"
    id: int | None = Field(
        default=None, sa_column=sa.Column(sa.BigInteger, sa.Identity(), primary_key=True)
    )
    metric: str = Field(sa_column=sa.Column(sa.String(32), nullable=False))
    labels: list[str] = Field(sa_column=sa.Column(sa.ARRAY(sa.Text), nullable=False))
    value: float


class MetricTotal(SQLModel, table=True):
    """A metric counter per label set: the deltas folded so far."""

    __tablename__ = "metric_totals"
    metric: str = Field(sa_column=sa.Column(sa.String(32), primary_key=True))
    labels: list[str] = Field(sa_column=sa.Column(sa.ARRAY(sa.Text), primary_key=True))
    value: float


class OpenAIFile(SQLModel, table=True):
    """A file of the OpenAI-compatible surface (``/openai/v1/files``): an uploaded batch input,
    its bytes kept here until deleted, or a batch's output or error file, whose lines are
    made from the batch's items when read (so retention and deletion of the items reach it)."""

    __tablename__ = "openai_files"
    __table_args__ = (sa.Index("ix_openai_files_tenant_created", "tenant_id", "created_at", "id"),)
    id: str = Field(default_factory=lambda: f"file-{uuid.uuid4().hex[:31]}", primary_key=True)
    tenant_id: str = Field(foreign_key="tenants.id")
    purpose: str = Field(sa_column=sa.Column(sa.String(32), nullable=False))
    """``batch`` (an upload) or ``batch_output`` (a batch's output or error file)."""
    filename: str = Field(sa_column=sa.Column(sa.String(255), nullable=False))
    size_bytes: int = Field(sa_column=sa.Column("bytes", sa.BigInteger, nullable=False))
    content: bytes | None = Field(default=None, sa_column=sa.Column(sa.LargeBinary))
    """An upload's bytes; None for a generated file."""
    batch_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(36)))
    """The batch a generated file belongs to."""
    kind: str | None = Field(default=None, sa_column=sa.Column(sa.String(8)))
    """A generated file's lines: ``output`` (answers) or ``error``."""
    created_at: datetime = _created()


class OpenAIBatch(SQLModel, table=True):
    """What the OpenAI-compatible surface adds to a native batch (same id): the request file it
    came from, its endpoint and window, the lines that became no job and the result files."""

    __tablename__ = "openai_batches"
    __table_args__ = (
        sa.Index("ix_openai_batches_tenant_created", "tenant_id", "created_at", "id"),
    )
    id: str = Field(foreign_key="batches.id", primary_key=True)
    tenant_id: str = Field(foreign_key="tenants.id")
    input_file_id: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    endpoint: str = Field(sa_column=sa.Column(sa.String(64), nullable=False))
    completion_window: str = Field(sa_column=sa.Column(sa.String(8), nullable=False))
    line_errors: list[dict[str, Any]] = Field(
        default_factory=list,
        sa_column=sa.Column(JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    )
    """Lines answered with an error instead of a job (``line``, ``custom_id``, ``code``,
    ``message``): an unsupported url, a body the endpoint refuses."""
    chat_lines: list[int] = Field(
        default_factory=list,
        sa_column=sa.Column(JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    )
    """Line numbers (the items' ``batch_index``) of ``/v1/chat/completions`` requests."""
    output_file_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(64)))
    error_file_id: str | None = Field(default=None, sa_column=sa.Column(sa.String(64)))
    files_made_at: datetime | None = _ts()
    """When the result files were made (the first read after the batch ended)."""
    created_at: datetime = _created()
