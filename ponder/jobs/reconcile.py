"""The reconciler: PostgreSQL is the truth, the broker only a delivery mechanism. Jobs that
are ``queued`` but were not picked up, runs whose lease expired (their worker died) and
notifications whose retry is due are sent to the broker again. Duplicate messages are
harmless: a run must claim the job's lease first."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from ponder.config import Settings
from ponder.db import after_commit
from ponder.models import Job, JobStatus, Notification, utcnow
from ponder.queue import send_delivery, send_run_job

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReconcileReport:
    requeued_jobs: int
    resent_notifications: int


def reconcile(*, session: Session, settings: Settings, limit: int = 500) -> ReconcileReport:
    now = utcnow()
    stale = now - timedelta(seconds=settings.worker.requeue_after_s)
    jobs = session.exec(
        select(Job)
        .where(
            sa.or_(
                sa.and_(col(Job.status) == JobStatus.queued.value, col(Job.enqueued_at) < stale),
                sa.and_(
                    col(Job.status) == JobStatus.running.value, col(Job.lease_expires_at) < now
                ),
            )
        )
        .order_by(col(Job.priority), col(Job.created_at))
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    for job in jobs:
        job.enqueued_at = now
        session.add(job)
        after_commit(session, functools.partial(send_run_job, job.id, job.priority))
    grace = now - timedelta(seconds=60)
    notes = session.exec(
        select(Notification)
        .where(Notification.status == "pending", col(Notification.next_attempt_at) < grace)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    for note in notes:
        note.next_attempt_at = now
        session.add(note)
        after_commit(session, functools.partial(send_delivery, note.id))
    if jobs or notes:
        logger.info("reconciler re-sent %d jobs and %d notifications", len(jobs), len(notes))
    return ReconcileReport(len(jobs), len(notes))
