"""Retention and deletion: a job's content is blanked when its tenant's retention has run
out after it ended (beat, in bounded batches), or at once when a caller deletes it.

Purging blanks content and keeps the rows: ids, statuses, timestamps, token counts, costs,
verifier names and pass/fail stay, so metrics (computed from these rows) never drop and the
audit keeps its references. Content is: the document, metadata and result of a job; the text
and parsed output of its candidates; its verdicts' findings; its trace events' data; its
notifications' payloads and e-mail addresses; its reviews' answers, diff, reason and verdicts;
a batch's metadata, e-mail, rejected-file list
and inbox file names. A legal hold on a job or its batch exempts it from both."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from ponder.batches.service import cancel_batch, get_batch
from ponder.batches.state import PENDING
from ponder.config import Settings
from ponder.db import session_scope
from ponder.errors import Conflict
from ponder.jobs import lease
from ponder.jobs import service as jobs
from ponder.models import (
    TERMINAL_STATUSES,
    Batch,
    Candidate,
    InboxFile,
    Job,
    JobStatus,
    Notification,
    OpenAIFile,
    Review,
    Tenant,
    TraceEvent,
    Verdict,
    utcnow,
)

logger = logging.getLogger(__name__)

EMPTY_JSON = sa.text("'{}'::jsonb")
EMPTY_LIST = sa.text("'[]'::jsonb")


def _purge_jobs(session: Session, job_ids: Sequence[str], now: datetime) -> None:
    """Blank the content of these jobs and of every row that hangs off them."""
    if not job_ids:
        return
    session.execute(
        sa.update(Job)
        .where(col(Job.id).in_(job_ids))
        .values(
            document="",
            metadata_=sa.null(),
            result=sa.null(),
            email=sa.null(),
            purged_at=sa.func.coalesce(col(Job.purged_at), now),
        )
    )
    candidates = sa.select(col(Candidate.id)).where(col(Candidate.job_id).in_(job_ids))
    session.execute(
        sa.update(Verdict)
        .where(col(Verdict.candidate_id).in_(candidates))
        .values(findings=EMPTY_LIST)
    )
    session.execute(
        sa.update(Candidate)
        .where(col(Candidate.job_id).in_(job_ids))
        .values(text="", parsed=sa.null())
    )
    session.execute(
        sa.update(TraceEvent).where(col(TraceEvent.job_id).in_(job_ids)).values(data=EMPTY_JSON)
    )
    # A review's decision, reviewer and times stay (statistics and the audit); what it says
    # about the document goes.
    session.execute(
        sa.update(Review)
        .where(col(Review.job_id).in_(job_ids))
        .values(
            answer_before=sa.null(),
            answer_after=sa.null(),
            diff=sa.null(),
            reason=sa.null(),
            verdicts=sa.null(),
        )
    )
    _purge_notifications(session, col(Notification.job_id).in_(job_ids))


def _purge_notifications(session: Session, where: sa.ColumnElement[bool]) -> None:
    """Blank payloads and e-mail addresses; a delivery still pending is not sent any more."""
    session.execute(
        sa.update(Notification)
        .where(where)
        .values(
            payload=EMPTY_JSON,
            target=sa.case((col(Notification.channel) == "email", ""), else_=Notification.target),
            status=sa.case(
                (col(Notification.status) == "pending", "disabled"), else_=Notification.status
            ),
            last_error=sa.case(
                (col(Notification.status) == "pending", "not sent: the content was purged"),
                else_=Notification.last_error,
            ),
            next_attempt_at=sa.null(),
        )
    )


def _purge_batches(session: Session, batch_ids: Sequence[str], now: datetime) -> None:
    if not batch_ids:
        return
    session.execute(
        sa.update(Batch)
        .where(col(Batch.id).in_(batch_ids))
        .values(
            metadata_=sa.null(),
            rejected_files=sa.null(),
            email=sa.null(),
            purged_at=sa.func.coalesce(col(Batch.purged_at), now),
        )
    )
    session.execute(
        sa.update(InboxFile).where(col(InboxFile.batch_id).in_(batch_ids)).values(file_name="")
    )
    _purge_notifications(session, col(Notification.batch_id).in_(batch_ids))


# -- the retention purge (beat) ---------------------------------------------------------------

_EXPIRED_JOBS = sa.text(
    """
    select j.id from jobs j
    join tenants t on t.id = j.tenant_id
    left join batches b on b.id = j.batch_id
    where j.purged_at is null and j.finished_at is not null
      and j.status in :terminal
      and j.finished_at < :now - make_interval(days => coalesce(t.retention_days, :days))
      and j.legal_hold_at is null and b.legal_hold_at is null
    order by j.finished_at
    limit :limit
    for update of j skip locked
    """
).bindparams(sa.bindparam("terminal", expanding=True))

_EXPIRED_BATCHES = sa.text(
    """
    select b.id from batches b
    join tenants t on t.id = b.tenant_id
    where b.purged_at is null and b.finished_at is not null
      and b.finished_at < :now - make_interval(days => coalesce(t.retention_days, :days))
      and b.legal_hold_at is null
    order by b.finished_at
    limit :limit
    for update of b skip locked
    """
)


_EXPIRED_UPLOADS = sa.text(
    """
    select f.id from openai_files f
    join tenants t on t.id = f.tenant_id
    where f.content is not null
      and f.created_at < :now - make_interval(days => coalesce(t.retention_days, :days))
      and not exists (
        select 1 from openai_batches ob join batches b on b.id = ob.id
        where ob.input_file_id = f.id and (b.legal_hold_at is not null or b.finished_at is null))
    order by f.created_at
    limit :limit
    for update of f skip locked
    """
)
"""Uploaded request files of the OpenAI-compatible surface (documents, so PHI) past the
tenant's retention, unless a batch made from one runs still or is under a legal hold."""


def purge_expired(*, session: Session, settings: Settings, now: datetime, limit: int) -> int:
    """One bounded batch: blank up to ``limit`` jobs whose retention ran out by ``now`` (and
    up to ``limit`` ended batches and uploaded request files). Returns how many were purged."""
    params = {"now": now, "days": settings.retention.default_days, "limit": limit}
    job_ids = list(
        session.execute(_EXPIRED_JOBS, {**params, "terminal": list(TERMINAL_STATUSES)}).scalars()
    )
    _purge_jobs(session, job_ids, now)
    batch_ids = list(session.execute(_EXPIRED_BATCHES, params).scalars())
    _purge_batches(session, batch_ids, now)
    file_ids = list(session.execute(_EXPIRED_UPLOADS, params).scalars())
    if file_ids:
        session.execute(
            sa.update(OpenAIFile).where(col(OpenAIFile.id).in_(file_ids)).values(content=sa.null())
        )
    return len(job_ids) + len(batch_ids) + len(file_ids)


@dataclass(frozen=True)
class PurgeReport:
    purged: int
    transactions: int


def purge_all_expired(*, settings: Settings, now: datetime | None = None) -> PurgeReport:
    """What beat runs: bounded batches, each its own transaction (so locks stay short and a
    crash loses at most one batch of work), until nothing is left. Owns its transactions,
    like a task."""
    now = now or utcnow()
    limit = settings.retention.batch_size
    purged = transactions = 0
    while True:
        with session_scope() as session:
            done = purge_expired(session=session, settings=settings, now=now, limit=limit)
        transactions += 1
        purged += done
        if done < limit:
            break
    logger.info(
        "retention: %d jobs, batches and uploads purged in %d transactions", purged, transactions
    )
    return PurgeReport(purged=purged, transactions=transactions)


# -- deletion and legal holds (API) -----------------------------------------------------------


def _held(job: Job, batch: Batch | None) -> str | None:
    if job.legal_hold_at is not None:
        return f"job {job.id} is under a legal hold since {job.legal_hold_at.isoformat()}"
    if batch is not None and batch.legal_hold_at is not None:
        return (
            f"job {job.id} belongs to batch {batch.id}, under a legal hold since "
            f"{batch.legal_hold_at.isoformat()}"
        )
    return None


def _stop(session: Session, job: Job, tenant: Tenant, settings: Settings, why: str) -> None:
    """Cancel the job through the job service; a running one is then ended here, which fences
    its run out (its next lease renewal finds the job no longer running and it stops without
    writing), so nothing is written after the purge."""
    if JobStatus(job.status).terminal:
        return
    jobs.cancel(session=session, tenant=tenant, job_id=job.id, settings=settings)
    if job.status == JobStatus.running.value:
        lease.finish(
            session=session, job=job, status=JobStatus.cancelled, settings=settings, error=why
        )


def delete_job(
    *, session: Session, tenant: Tenant, job_id: str, key_id: str, settings: Settings
) -> Job:
    """Purge the job's content now and leave a tombstone (when, by which key). A second call
    answers the same tombstone. Refused (409) under a legal hold on the job or its batch."""
    job = jobs.get_job(session=session, tenant=tenant, job_id=job_id)
    session.refresh(job, with_for_update=True)
    if job.deleted_at is not None:
        return job
    batch = session.get(Batch, job.batch_id) if job.batch_id else None
    if (hold := _held(job, batch)) is not None:
        raise Conflict(f"{hold}; release the hold before deleting", legal_hold=True)
    _stop(session, job, tenant, settings, "cancelled: deleted by the caller while it ran")
    now = utcnow()
    job.deleted_at, job.deleted_by = now, key_id
    session.add(job)
    session.flush()
    _purge_jobs(session, [job.id], now)
    session.refresh(job)
    logger.info("job %s deleted by key %s", job.id, key_id)
    return job


def delete_batch(
    *, session: Session, tenant: Tenant, batch_id: str, key_id: str, settings: Settings
) -> Batch:
    """Cancel the batch if it runs, then purge it and every item, leaving tombstones."""
    batch = get_batch(session=session, tenant=tenant, batch_id=batch_id)
    if batch.deleted_at is not None:
        return batch
    if batch.legal_hold_at is not None:
        raise Conflict(
            f"batch {batch.id} is under a legal hold since {batch.legal_hold_at.isoformat()}; "
            "release the hold before deleting",
            legal_hold=True,
        )
    held = session.exec(
        select(Job.id).where(Job.batch_id == batch.id, col(Job.legal_hold_at).is_not(None))
    ).first()
    if held is not None:
        raise Conflict(
            f"item {held} of batch {batch.id} is under a legal hold; release it before deleting",
            legal_hold=True,
        )
    if batch.finished_at is None:
        cancel_batch(session=session, tenant=tenant, batch_id=batch.id, settings=settings)
    running = session.exec(
        select(Job).where(Job.batch_id == batch.id, col(Job.status).in_(PENDING)).with_for_update()
    ).all()
    for item in running:
        _stop(session, item, tenant, settings, "cancelled: its batch was deleted while it ran")
    now = utcnow()
    session.execute(
        sa.update(Job)
        .where(col(Job.batch_id) == batch.id, col(Job.deleted_at).is_(None))
        .values(deleted_at=now, deleted_by=key_id)
    )
    item_ids = list(session.exec(select(Job.id).where(Job.batch_id == batch.id)).all())
    _purge_jobs(session, item_ids, now)
    session.refresh(batch, with_for_update=True)
    batch.deleted_at, batch.deleted_by = now, key_id
    session.add(batch)
    session.flush()
    _purge_batches(session, [batch.id], now)
    session.refresh(batch)
    logger.info("batch %s deleted by key %s (%d items)", batch.id, key_id, len(item_ids))
    return batch


def set_job_hold(*, session: Session, tenant: Tenant, job_id: str, key_id: str, held: bool) -> Job:
    """Place (idempotent: the first time is kept) or release a legal hold on a job."""
    job = jobs.get_job(session=session, tenant=tenant, job_id=job_id)
    session.refresh(job, with_for_update=True)
    _check_holdable(held, job.deleted_at, f"job {job.id}")
    if held and job.legal_hold_at is None:
        job.legal_hold_at, job.legal_hold_by = utcnow(), key_id
    elif not held:
        job.legal_hold_at, job.legal_hold_by = None, None
    session.add(job)
    return job


def set_batch_hold(
    *, session: Session, tenant: Tenant, batch_id: str, key_id: str, held: bool
) -> Batch:
    """Place or release a legal hold on a batch: it covers every item of the batch."""
    batch = get_batch(session=session, tenant=tenant, batch_id=batch_id)
    session.refresh(batch, with_for_update=True)
    _check_holdable(held, batch.deleted_at, f"batch {batch.id}")
    if held and batch.legal_hold_at is None:
        batch.legal_hold_at, batch.legal_hold_by = utcnow(), key_id
    elif not held:
        batch.legal_hold_at, batch.legal_hold_by = None, None
    session.add(batch)
    return batch


def _check_holdable(held: bool, deleted_at: datetime | None, what: str) -> None:
    if held and deleted_at is not None:
        raise Conflict(f"{what} was deleted at {deleted_at.isoformat()}; there is nothing to hold")
