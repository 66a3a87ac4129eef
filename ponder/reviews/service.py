"""Reviewing jobs: the queue, opening a job (which claims its soft lock), checking an edited
answer, and the decision that ends the job ``reviewed``. No commits: the caller's session
owns the transaction, and the notifications of the decision join it through the outbox."""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from ponder import audit
from ponder.audit import Actor
from ponder.config import Settings, get_settings
from ponder.errors import Conflict, InvalidRequest, NotFound
from ponder.jobs import state as job_state
from ponder.jobs.trace import read_trace
from ponder.models import Candidate, Job, JobStatus, Review, ReviewDecision, Reviewer, utcnow
from ponder.notify.outbox import enqueue_job_notifications
from ponder.reviews.diff import field_diff
from ponder.reviews.outcome import HUMAN_REVIEWED
from ponder.scoping import readable_jobs
from ponder.tasktypes import TaskType
from ponder.validation import InvalidInput, check_value
from ponder.verify import SCHEMA_VERIFIER, verify_candidate
from tasks.common.locate import FoldedText, locate
from tasks.registry import TASKS

logger = logging.getLogger(__name__)

MAX_REASON_CHARS = 5000
DECISIONS = tuple(d.value for d in ReviewDecision)
VIEW, DECIDE = "review.view", "review.decide"
"""Audit actions: a document opened for review, a decision."""


def _awaiting_review() -> sa.ColumnElement[bool]:
    return sa.or_(
        col(Job.status) == JobStatus.needs_review.value,
        sa.and_(col(Job.status) == JobStatus.succeeded.value, col(Job.qa_sampled).is_(True)),
    )


def awaiting_review(job: Job) -> bool:
    """Only ``needs_review`` jobs and QA-sampled ``succeeded`` ones can be reviewed."""
    return job.status == JobStatus.needs_review.value or (
        job.status == JobStatus.succeeded.value and job.qa_sampled
    )


# -- the queue --------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueItem:
    job_id: str
    task: str
    batch_id: str | None
    status: str
    """``needs_review``, or ``succeeded`` for a QA-sampled job."""
    qa_sampled: bool
    priority: int
    created_at: datetime
    finished_at: datetime | None
    failing_verifiers: list[str]
    locked_by_email: str | None
    lock_expires_at: datetime | None


def _encode_cursor(job: Job) -> str:
    raw = json.dumps([job.priority, job.created_at.isoformat(), job.id])
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_cursor(cursor: str) -> tuple[int, datetime, str]:
    try:
        priority, created, job_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        check_value("cursor", job_id)
        return int(priority), datetime.fromisoformat(created), str(job_id)
    except (ValueError, TypeError, UnicodeError) as exc:
        raise InvalidRequest("cursor is not valid: pass next_cursor from a previous page") from exc


def review_queue(
    *,
    session: Session,
    tenant_id: str,
    task: str | None = None,
    batch_id: str | None = None,
    failing_verifier: str | None = None,
    older_than_s: float | None = None,
    limit: int = 50,
    cursor: str | None = None,
    now: datetime | None = None,
) -> tuple[list[QueueItem], str | None, dict[str, int]]:
    """The tenant's jobs awaiting review, most urgent priority first, then oldest first; the
    next page's cursor (None on the last page); and the count per task of the whole queue
    (filters not applied, so the counts say what waits where)."""
    now = now or utcnow()
    waiting = readable_jobs(tenant_id).where(
        _awaiting_review(), col(Job.deleted_at).is_(None), col(Job.purged_at).is_(None)
    )
    query = waiting
    if task:
        query = query.where(col(Job.task) == task)
    if batch_id:
        query = query.where(col(Job.batch_id) == batch_id)
    if failing_verifier:
        # JSONB containment: some failing check names this verifier.
        query = query.where(
            col(Job.result)["failing_checks"].contains([{"verifier": failing_verifier}])
        )
    if older_than_s is not None:
        query = query.where(col(Job.finished_at) < now - timedelta(seconds=older_than_s))
    if cursor:
        priority, created, job_id = _decode_cursor(cursor)
        query = query.where(
            sa.tuple_(col(Job.priority), col(Job.created_at), col(Job.id))
            > sa.tuple_(priority, created, job_id)
        )
    query = query.order_by(col(Job.priority), col(Job.created_at), col(Job.id)).limit(limit + 1)
    rows = list(session.exec(query).all())
    next_cursor = _encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    rows = rows[:limit]
    emails = _lock_holders(session, rows, now)
    items = [
        QueueItem(
            job_id=j.id,
            task=j.task,
            batch_id=j.batch_id,
            status=j.status,
            qa_sampled=j.qa_sampled,
            priority=j.priority,
            created_at=j.created_at,
            finished_at=j.finished_at,
            failing_verifiers=[f["verifier"] for f in (j.result or {}).get("failing_checks", [])],
            locked_by_email=emails.get(j.id),
            lock_expires_at=j.review_lock_expires_at if j.id in emails else None,
        )
        for j in rows
    ]
    counts = {
        name: int(count)
        for name, count in session.execute(
            waiting.with_only_columns(col(Job.task), sa.func.count()).group_by(col(Job.task))
        ).all()
    }
    return items, next_cursor, counts


def _lock_holders(session: Session, jobs: list[Job], now: datetime) -> dict[str, str]:
    """Job id → email of the reviewer whose lock on it has not expired."""
    locked = {
        j.id: j.review_locked_by
        for j in jobs
        if j.review_locked_by and j.review_lock_expires_at and j.review_lock_expires_at > now
    }
    if not locked:
        return {}
    emails = dict(
        session.execute(
            sa.select(col(Reviewer.id), col(Reviewer.email)).where(
                col(Reviewer.id).in_(set(locked.values()))
            )
        ).all()
    )
    return {job_id: emails.get(rid, rid) for job_id, rid in locked.items() if rid}


# -- opening a job ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewContext:
    job: Job
    """A detached copy of the row."""
    task_type: TaskType
    document: str
    selected_answer: dict[str, Any] | None
    candidates: list[dict[str, Any]]
    rationale: dict[str, Any]
    confidence: float | None
    tokens: dict[str, int]
    cost: float | None
    evidence_spans: list[dict[str, Any]]
    lock: dict[str, Any] | None
    """``reviewer_id``, ``email``, ``expires_at`` of an unexpired lock; None when free."""
    locked_by_me: bool
    review: dict[str, Any] | None
    """The review record when the job was already reviewed."""


def tenant_job(session: Session, tenant_id: str, job_id: str, *, for_update: bool) -> Job:
    """The tenant's job; 404 for an unknown, deleted or another tenant's job."""
    query = readable_jobs(tenant_id).where(col(Job.id) == job_id)
    if for_update:
        query = query.with_for_update()
    job = session.exec(query).first()
    if job is None or job.deleted_at is not None:
        raise NotFound(f"no job {job_id}")  # another tenant's job is indistinguishable
    return job


def _claim_lock(session: Session, job_id: str, reviewer_id: str, now: datetime, ttl_s: int) -> None:
    """One conditional UPDATE: free, expired or already ours; a lock held by someone else is
    left alone (two reviewers opening at once: one wins, the other sees its lock)."""
    session.execute(
        sa.update(Job)
        .where(
            col(Job.id) == job_id,
            sa.or_(
                col(Job.review_locked_by).is_(None),
                col(Job.review_lock_expires_at) < now,
                col(Job.review_locked_by) == reviewer_id,
            ),
        )
        .values(review_locked_by=reviewer_id, review_lock_expires_at=now + timedelta(seconds=ttl_s))
        .execution_options(synchronize_session="fetch")
    )


def open_job(
    *,
    session: Session,
    tenant_id: str,
    job_id: str,
    reviewer_id: str | None,
    now: datetime | None = None,
    api_key_id: str | None = None,
    address: str | None = None,
    settings: Settings | None = None,
) -> ReviewContext:
    """Everything a reviewer needs to decide, and the audit record of the view. A reviewer
    (``reviewer_id``) claims the lock when the job awaits review; an API key only reads."""
    now = now or utcnow()
    settings = settings or get_settings()
    job = tenant_job(session, tenant_id, job_id, for_update=False)
    if reviewer_id is not None and awaiting_review(job):
        _claim_lock(session, job.id, reviewer_id, now, settings.review.lock_ttl_s)
        session.refresh(job)
    audit.record(
        session,
        Actor(tenant_id=tenant_id, key_id=api_key_id, address=address),
        VIEW,
        job_id=job.id,
        target_id=reviewer_id,
    )
    task = TASKS[job.task]
    trace = read_trace(session, job).model_dump()
    result = job.result or {}
    candidates = [
        {
            "id": c["id"],
            "step": c["step"],
            "idx": c["idx"],
            "text": c["text"],
            "parsed": c["parsed"],
            "score": c["score"],
            "passed_required": c["passed_required"],
            "verdicts": [
                {k: v[k] for k in ("verifier", "passed", "required", "findings")}
                for v in c["verdicts"]
            ],
            "tokens": c["prompt_tokens"] + c["completion_tokens"],
            "selected": c["selected"],
        }
        for c in trace["candidates"]
    ]
    confidence = next(
        (s["data"].get("value") for s in reversed(trace["steps"]) if s["kind"] == "confidence"),
        None,
    )
    lock = _lock_of(session, job, now)
    review = session.exec(
        select(Review).where(Review.job_id == job.id).order_by(col(Review.created_at).desc())
    ).first()
    selected = result.get("output")
    logger.info("job %s opened for review (reviewer %s)", job.id, reviewer_id)
    return ReviewContext(
        job=Job.model_validate(job.model_dump()),
        task_type=task,
        document=job.document,
        selected_answer=selected,
        candidates=candidates,
        rationale={"reason": result.get("rationale"), "selection": trace["selection"]},
        confidence=confidence,
        tokens={
            "prompt": job.prompt_tokens,
            "completion": job.completion_tokens,
            "cached": job.cached_tokens,
            "thinking": job.thinking_tokens,
        },
        cost=job.cost,
        evidence_spans=evidence_spans(selected, job.document),
        lock=lock,
        locked_by_me=lock is not None
        and reviewer_id is not None
        and lock["reviewer_id"] == reviewer_id,
        review=review_record(session, review) if review is not None else None,
    )


def _lock_of(session: Session, job: Job, now: datetime) -> dict[str, Any] | None:
    expires = job.review_lock_expires_at
    if not job.review_locked_by or expires is None or expires <= now:
        return None
    reviewer = session.get(Reviewer, job.review_locked_by)
    return {
        "reviewer_id": job.review_locked_by,
        "email": reviewer.email if reviewer else job.review_locked_by,
        "expires_at": expires,
    }


def evidence_spans(answer: dict[str, Any] | None, document: str) -> list[dict[str, Any]]:
    """Every quote of the answer (a medication's ``evidence``, a finding's ``quote``) with its
    place in the document; ``located`` is False for a quote that does not occur there."""
    if not answer:
        return []
    folded = FoldedText(document)
    spans = []
    for items in answer.values():
        if not isinstance(items, list):
            continue
        for item in items:
            if not isinstance(item, dict):
                continue
            quote = item.get("evidence") or item.get("quote")
            if not isinstance(quote, str):
                continue
            where = locate(quote, document, folded)
            spans.append(
                {
                    "label": str(item.get("name") or item.get("category") or ""),
                    "quote": quote,
                    "start": where.start if where else None,
                    "end": where.end if where else None,
                    "located": where is not None,
                }
            )
    return spans


# -- checking and deciding --------------------------------------------------------------------


def check_answer(
    *, task_name: str, document: str, answer: dict[str, Any]
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """Run an answer through the task's schema and deterministic verifiers (model judges are
    left out: a decision must not wait on the engine). Returns the parsed answer (None when
    it does not fit the schema: the failing ``schema`` verdict names the field) and every
    verdict."""
    task = TASKS[task_name]
    parsed, verdicts = verify_candidate(
        text=json.dumps(answer),
        output_model=task.output_model,
        document=document,
        verifiers=[v for v in task.verifiers if not v.judge],
    )
    return (
        parsed.model_dump(mode="json") if parsed is not None else None,
        [
            {
                "verifier": v.verifier,
                "passed": v.passed,
                "required": v.required,
                "findings": v.findings,
            }
            for v in verdicts
        ],
    )


def _failing_required(verdicts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [v for v in verdicts if v["required"] and not v["passed"]]


def _clean_reason(reason: str | None) -> str | None:
    if reason is None or not reason.strip():
        return None
    if len(reason) > MAX_REASON_CHARS:
        raise InvalidRequest(
            f"reason has {len(reason)} characters; the limit is {MAX_REASON_CHARS}"
        )
    try:
        check_value("reason", reason)
    except InvalidInput as exc:
        raise InvalidRequest(str(exc)) from None
    return reason.strip()


def _refuse_if_locked(session: Session, job: Job, reviewer_id: str | None, now: datetime) -> None:
    lock = _lock_of(session, job, now)
    if lock is not None and lock["reviewer_id"] != reviewer_id:
        expires = lock["expires_at"].isoformat()
        raise Conflict(
            f"job {job.id} is locked by {lock['email']} until {expires}; try again after that",
            locked_by=lock["email"],
            lock_expires_at=expires,
        )


def decide(
    *,
    session: Session,
    tenant_id: str,
    job_id: str,
    reviewer_id: str | None,
    api_key_id: str | None,
    decision: str,
    candidate_id: str | None = None,
    answer: dict[str, Any] | None = None,
    reason: str | None = None,
    settings: Settings,
    now: datetime | None = None,
    address: str | None = None,
) -> dict[str, Any]:
    """Record a person's decision and end the job ``reviewed``; the ``job.reviewed``
    notifications are written in the same transaction. Returns the review record."""
    now = now or utcnow()
    job = tenant_job(session, tenant_id, job_id, for_update=True)
    if not awaiting_review(job):
        raise Conflict(
            f"job {job.id} is {job.status}, not awaiting review: only needs_review jobs and "
            "QA-sampled succeeded jobs can be reviewed",
            status=job.status,
        )
    _refuse_if_locked(session, job, reviewer_id, now)
    if decision not in DECISIONS:
        raise InvalidRequest(
            f"unknown decision; valid decisions: {', '.join(DECISIONS)}", valid=list(DECISIONS)
        )
    reason = _clean_reason(reason)
    result = dict(job.result or {})
    before = result.get("output")
    after: dict[str, Any] | None
    chosen: str | None = None
    if decision == ReviewDecision.approved:
        if before is None:
            raise InvalidRequest(
                "the job has no selected answer to approve: approve a candidate "
                "(approved_candidate), correct or reject"
            )
        after, chosen = before, job.selected_candidate_id
    elif decision == ReviewDecision.approved_candidate:
        after, chosen = _candidate_answer(session, job, candidate_id), candidate_id
    elif decision == ReviewDecision.corrected:
        if not isinstance(answer, dict):
            raise InvalidRequest("a correction needs 'answer': the corrected answer as an object")
        after = answer
    else:
        if reason is None:
            raise InvalidRequest("a rejection needs a 'reason': say why no answer is usable")
        after = None
    verdicts: list[dict[str, Any]] = []
    if after is not None:
        parsed, verdicts = check_answer(task_name=job.task, document=job.document, answer=after)
        if parsed is None:
            schema = next(v for v in verdicts if v["verifier"] == SCHEMA_VERIFIER)
            raise InvalidRequest(
                "the answer does not fit the task's schema: " + "; ".join(schema["findings"]),
                verdicts=verdicts,
            )
        after = parsed
        failing = _failing_required(verdicts)
        if decision == ReviewDecision.corrected and failing and reason is None:
            names = ", ".join(v["verifier"] for v in failing)
            raise InvalidRequest(
                f"the corrected answer still fails required checks ({names}); fix it, or give "
                "a 'reason' to save it anyway",
                verdicts=failing,
            )
    review = Review(
        job_id=job.id,
        tenant_id=tenant_id,
        reviewer_id=reviewer_id,
        api_key_id=api_key_id,
        decision=decision,
        candidate_id=chosen,
        answer_before=before,
        answer_after=after,
        diff=field_diff(before or {}, after) if after is not None else [],
        reason=reason,
        verdicts=verdicts,
        was_sampled=job.status == JobStatus.succeeded.value,
        seconds_to_review=_seconds_to_review(job, reviewer_id, now, settings),
        created_at=now,
    )
    session.add(review)
    reviewer = session.get(Reviewer, reviewer_id) if reviewer_id else None
    result["review"] = {
        "decision": decision,
        "reviewer": reviewer.email if reviewer else f"api key {api_key_id}",
        "at": now.isoformat(),
        "provenance": HUMAN_REVIEWED,
        "answer": after,
        "review_id": review.id,
    }
    job.result = result
    job_state.move(job, JobStatus.reviewed)
    job.review_locked_by = None
    job.review_lock_expires_at = None
    session.add(job)
    session.flush()
    audit.record(
        session,
        Actor(tenant_id=tenant_id, key_id=api_key_id, address=address),
        DECIDE,
        job_id=job.id,
        target_id=reviewer_id,
    )
    enqueue_job_notifications(session=session, job=job, settings=settings)
    logger.info("job %s reviewed: %s (review %s)", job.id, decision, review.id)
    return review_record(session, review)


def _candidate_answer(session: Session, job: Job, candidate_id: str | None) -> dict[str, Any]:
    if not candidate_id:
        raise InvalidRequest("approved_candidate needs 'candidate_id': one of the job's candidates")
    candidate = session.get(Candidate, candidate_id)
    if candidate is None or candidate.job_id != job.id:
        raise InvalidRequest("candidate_id names no candidate of this job; see its trace")
    if candidate.parsed is None:
        raise InvalidRequest(
            "that candidate's output did not parse: there is no answer to approve; correct instead"
        )
    return candidate.parsed


def _seconds_to_review(
    job: Job, reviewer_id: str | None, now: datetime, settings: Settings
) -> float | None:
    """From when the reviewer's lock was claimed (its expiry less the TTL) to the decision;
    for an API decision, from the job's end."""
    if reviewer_id and job.review_locked_by == reviewer_id and job.review_lock_expires_at:
        opened = job.review_lock_expires_at - timedelta(seconds=settings.review.lock_ttl_s)
        return max(0.0, (now - opened).total_seconds())
    if job.finished_at is not None:
        return max(0.0, (now - job.finished_at).total_seconds())
    return None


def review_record(session: Session, review: Review) -> dict[str, Any]:
    reviewer = session.get(Reviewer, review.reviewer_id) if review.reviewer_id else None
    return {
        "id": review.id,
        "job_id": review.job_id,
        "decision": review.decision,
        "reviewer_id": review.reviewer_id,
        "reviewer_email": reviewer.email if reviewer else None,
        "api_key_id": review.api_key_id,
        "candidate_id": review.candidate_id,
        "answer_before": review.answer_before,
        "answer_after": review.answer_after,
        "diff": review.diff,
        "reason": review.reason,
        "verdicts": review.verdicts,
        "was_sampled": review.was_sampled,
        "seconds_to_review": review.seconds_to_review,
        "created_at": review.created_at,
    }
