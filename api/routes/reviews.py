"""The review API for tenants with their own tools: the queue (``GET /v1/reviews``), a job's
review context (``GET /v1/jobs/{id}/review``, audit-recorded: it shows the document) and the
decision (``POST /v1/jobs/{id}/review``). The same service backs the pages under ``/review``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query
from pydantic import BaseModel, ConfigDict, Field

from api.deps import SessionDep, SettingsDep, TenantDep
from api.routes.jobs import to_public
from api.schemas import ErrorPublic, JobPublic
from api.scopes import ActorDep
from ponder.errors import InvalidRequest
from ponder.reviews import service, stats
from ponder.storable import StorableInput

router = APIRouter(tags=["reviews"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorPublic} for code in (401, 403, 404, 409, 422)
}


class QueueItemPublic(BaseModel):
    job_id: str
    task: str
    batch_id: str | None
    status: str = Field(description="needs_review, or succeeded for a QA-sampled job.")
    qa_sampled: bool
    priority: int
    created_at: datetime
    finished_at: datetime | None
    failing_verifiers: list[str]
    locked_by_email: str | None
    lock_expires_at: datetime | None


class ReviewQueuePage(BaseModel):
    items: list[QueueItemPublic]
    next_cursor: str | None
    counts: dict[str, int] = Field(description="Jobs awaiting review per task (no filters).")


class ReviewOutcomes(BaseModel):
    approved: int = Field(description="The selected answer approved as it was.")
    approved_candidate: int = Field(description="Another candidate's answer approved as it was.")
    corrected: int
    rejected: int
    total: int


class ReviewTimes(BaseModel):
    p50: float | None = Field(description="Median seconds from opening a job to deciding.")
    p90: float | None


class PrecisionEstimate(BaseModel):
    precision: float | None = Field(
        description="Share of QA-sampled succeeded jobs approved as is (None without a sample)."
    )
    low: float = Field(description="95 % Wilson interval, lower bound.")
    high: float
    n: int = Field(description="QA-sampled jobs reviewed.")


class TaskReviewStats(BaseModel):
    outcomes: ReviewOutcomes
    review_time_s: ReviewTimes
    failing_on_approved: dict[str, int] = Field(
        description="Verifier → approved answers it had failed (checks that may be too strict)."
    )
    failing_on_corrected: dict[str, int] = Field(
        description="Verifier → corrected answers it had failed."
    )
    qa: PrecisionEstimate


class ReviewPublic(BaseModel):
    id: str
    job_id: str
    decision: str
    reviewer_id: str | None
    reviewer_email: str | None
    api_key_id: str | None
    candidate_id: str | None
    answer_before: dict[str, Any] | None
    answer_after: dict[str, Any] | None
    diff: list[dict[str, Any]] | None = Field(description="{path, before, after} per field.")
    reason: str | None
    verdicts: list[dict[str, Any]] | None = Field(
        description="The deterministic verifiers' verdicts on answer_after."
    )
    was_sampled: bool
    seconds_to_review: float | None
    created_at: datetime


class ReviewContextPublic(BaseModel):
    job: JobPublic
    document: str
    selected_answer: dict[str, Any] | None
    candidates: list[dict[str, Any]]
    rationale: dict[str, Any]
    confidence: float | None
    tokens: dict[str, int]
    cost: float | None
    evidence_spans: list[dict[str, Any]]
    lock: dict[str, Any] | None
    awaiting_review: bool
    review: ReviewPublic | None


class ReviewCreate(StorableInput):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["approved", "approved_candidate", "corrected", "rejected"] = Field(
        description="approved: the selected answer as is; approved_candidate: another "
        "candidate's (candidate_id); corrected: the edited answer (answer); rejected: no usable "
        "answer (reason required)."
    )
    candidate_id: str | None = Field(default=None, max_length=36)
    answer: dict[str, Any] | None = Field(
        default=None, description="The corrected answer, in the task's output schema."
    )
    reason: str | None = Field(
        default=None,
        max_length=service.MAX_REASON_CHARS,
        description="Required to reject, and to save a correction that still fails checks.",
    )


@router.get("/v1/reviews", response_model=ReviewQueuePage, responses=_ERRORS)
def review_queue(
    session: SessionDep,
    tenant: TenantDep,
    task: Annotated[str | None, Query(max_length=64)] = None,
    batch_id: Annotated[str | None, Query(max_length=36)] = None,
    failing_verifier: Annotated[str | None, Query(max_length=64)] = None,
    older_than_s: Annotated[float | None, Query(ge=0, le=10 * 365 * 86400)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=300)] = None,
) -> ReviewQueuePage:
    """Jobs awaiting review: every needs_review job and the QA-sampled succeeded ones, most
    urgent priority first, then oldest; pass ``next_cursor`` back as ``cursor``."""
    items, next_cursor, counts = service.review_queue(
        session=session,
        tenant_id=tenant.id,
        task=task,
        batch_id=batch_id,
        failing_verifier=failing_verifier,
        older_than_s=older_than_s,
        limit=limit,
        cursor=cursor,
    )
    return ReviewQueuePage(
        items=[QueueItemPublic.model_validate(i, from_attributes=True) for i in items],
        next_cursor=next_cursor,
        counts=counts,
    )


@router.get("/v1/reviews/stats", response_model=dict[str, TaskReviewStats], responses=_ERRORS)
def review_stats(session: SessionDep, tenant: TenantDep) -> dict[str, Any]:
    """Per task: outcomes, time to review, verifiers failing on approved and corrected answers,
    and the QA precision estimate with its 95 % Wilson interval."""
    return stats.review_stats(session=session, tenant_id=tenant.id)


@router.get("/v1/jobs/{job_id}/review", response_model=ReviewContextPublic, responses=_ERRORS)
def get_review(
    job_id: str, session: SessionDep, tenant: TenantDep, actor: ActorDep
) -> ReviewContextPublic:
    """The document, the selected answer with its evidence located, every candidate with its
    verdicts, and the review once decided. Recorded in the audit (``review.view``)."""
    ctx = service.open_job(
        session=session,
        tenant_id=tenant.id,
        job_id=job_id,
        reviewer_id=None,
        api_key_id=actor.key_id,
        address=actor.address,
    )
    return ReviewContextPublic(
        job=to_public(ctx.job),
        document=ctx.document,
        selected_answer=ctx.selected_answer,
        candidates=ctx.candidates,
        rationale=ctx.rationale,
        confidence=ctx.confidence,
        tokens=ctx.tokens,
        cost=ctx.cost,
        evidence_spans=ctx.evidence_spans,
        lock=ctx.lock,
        awaiting_review=service.awaiting_review(ctx.job),
        review=ReviewPublic.model_validate(ctx.review) if ctx.review else None,
    )


@router.post(
    "/v1/jobs/{job_id}/review", response_model=ReviewPublic, status_code=201, responses=_ERRORS
)
def create_review(
    job_id: str,
    session: SessionDep,
    tenant: TenantDep,
    actor: ActorDep,
    settings: SettingsDep,
    body: Annotated[ReviewCreate | None, Body()] = None,
) -> ReviewPublic:
    """Decide on a job awaiting review; it ends ``reviewed`` and its recipients get a
    ``job.reviewed`` notification. Recorded in the audit (``review.decide``)."""
    if body is None:
        # The job first: another tenant's job is a 404 whatever was sent.
        service.tenant_job(session, tenant.id, job_id, for_update=False)
        raise InvalidRequest(
            "send the decision as a JSON body: {decision, candidate_id?, answer?, reason?}"
        )
    record = service.decide(
        session=session,
        tenant_id=tenant.id,
        job_id=job_id,
        reviewer_id=None,
        api_key_id=actor.key_id,
        decision=body.decision,
        candidate_id=body.candidate_id,
        answer=body.answer,
        reason=body.reason,
        settings=settings,
        address=actor.address,
    )
    return ReviewPublic.model_validate(record)
