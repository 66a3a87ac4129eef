"""A batch's state, derived from its items' states, and its report, written in the transaction
that ends its last item. A batch never reads as done while items failed without saying so:
the counts per state are always given, and the state names failures."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from ponder.config import Settings
from ponder.models import Batch, Job, JobStatus, utcnow
from ponder.notify.outbox import enqueue_batch_report
from ponder.notify.payloads import MAX_REPORTED_FAILURES, batch_payload

logger = logging.getLogger(__name__)

PENDING = (JobStatus.queued.value, JobStatus.running.value)
FAILED = (JobStatus.failed.value, JobStatus.expired.value)


@dataclass
class ItemCounts:
    counts: dict[str, int] = field(default_factory=lambda: {s.value: 0 for s in JobStatus})
    """Items per job state, every state present (zeros included)."""
    started_at: datetime | None = None
    """When the first item started."""


def count_items(session: Session, batch_id: str) -> ItemCounts:
    return count_items_of(session, [batch_id])[batch_id]


def count_items_of(session: Session, batch_ids: list[str]) -> dict[str, ItemCounts]:
    """The items of each batch counted per state: the counts a trigger on ``jobs`` keeps on
    the batch row (migration 0008), so a page of batches reads one row per batch whatever
    their sizes."""
    found = {batch_id: ItemCounts() for batch_id in batch_ids}
    if not batch_ids:
        return found
    rows = session.execute(
        sa.select(col(Batch.id), col(Batch.item_counts), col(Batch.items_started_at)).where(
            col(Batch.id).in_(batch_ids)
        )
    ).all()
    for batch_id, counts, started in rows:
        items = found[batch_id]
        items.counts.update({status: int(n) for status, n in counts.items()})
        items.started_at = started
    return found


def derive_status(batch: Batch, counts: dict[str, int]) -> str:
    """``queued`` (nothing started), ``running``, ``cancelling`` (cancelled, items still
    running); once every item ended: ``cancelled``, ``succeeded`` (every item), ``needs_review``
    (none failed, some need review), ``failed`` (every item failed), ``expired`` (its window,
    ``complete_by``, passed with items not started: those are ``expired``, the others keep
    their results, as with the hosted batch APIs) or ``completed_with_failures`` (some items
    failed or were cancelled, or inbox files were rejected). Reviewed items count with the
    succeeded ones."""
    total = sum(counts.values())
    pending = sum(counts[s] for s in PENDING)
    if pending:
        if batch.cancel_requested_at is not None:
            return "cancelling"
        return "queued" if pending == counts[JobStatus.queued.value] == total else "running"
    if batch.cancel_requested_at is not None:
        return "cancelled"
    if batch.complete_by is not None and counts[JobStatus.expired.value]:
        return "expired"
    failed = sum(counts[s] for s in FAILED)
    rejected = len(batch.rejected_files or [])  # inbox files a nightly run could not submit
    if total == 0:
        return "failed" if rejected else "succeeded"
    # An item a person reviewed (after the batch's report) counts as resolved, like one
    # that succeeded: the state a caller reads later does not turn worse for a review.
    resolved = counts[JobStatus.succeeded.value] + counts[JobStatus.reviewed.value]
    if resolved == total and not rejected:
        return "succeeded"
    if failed == total:
        return "failed"
    if failed or rejected or counts[JobStatus.cancelled.value]:
        return "completed_with_failures"
    return "needs_review"


def close_batch_if_ended(*, session: Session, batch_id: str, settings: Settings) -> bool:
    """Called in the transaction that ends an item. The batch row is locked before the items
    are counted, so of two last items ending at once the second sees the first's commit."""
    # FOR NO KEY UPDATE, the lock an UPDATE of the batch's counts takes: a plain FOR UPDATE
    # would also wait for the key-share locks of rows referencing the batch, while their
    # transactions wait for this one's counts (a deadlock).
    batch = session.exec(
        select(Batch).where(Batch.id == batch_id).with_for_update(key_share=True)
    ).one()
    if batch.finished_at is not None:
        return False
    still_pending = session.execute(
        sa.select(sa.literal(1))
        .where(col(Job.batch_id) == batch_id, col(Job.status).in_(PENDING))
        .limit(1)
    ).first()
    if still_pending is not None:
        return False
    batch.finished_at = utcnow()
    session.add(batch)
    counts = count_items(session, batch_id).counts
    status = derive_status(batch, counts)
    failures, failure_count = _failures(session, batch_id)
    payload = batch_payload(
        batch,
        status=status,
        counts=counts,
        failures=failures,
        failure_count=failure_count,
        settings=settings,
    )
    enqueue_batch_report(session=session, batch=batch, payload=payload, settings=settings)
    logger.info("batch %s round %d ended %s", batch.id, batch.round, status)
    return True


def _failures(session: Session, batch_id: str) -> tuple[list[dict[str, Any]], int]:
    where = (col(Job.batch_id) == batch_id, col(Job.status).in_(FAILED))
    count = session.execute(sa.select(sa.func.count()).select_from(Job).where(*where)).scalar_one()
    rows = session.execute(
        sa.select(col(Job.custom_id), col(Job.id), col(Job.status), col(Job.error))
        .where(*where)
        .order_by(col(Job.batch_index))
        .limit(MAX_REPORTED_FAILURES)
    ).all()
    failures = [
        {"custom_id": custom_id, "job_id": job_id, "status": status, "error": error or status}
        for custom_id, job_id, status, error in rows
    ]
    return failures, int(count)
