"""The reconciler: PostgreSQL is the truth, the broker only a delivery mechanism. Queued jobs
past their deadline are expired; jobs that are ``queued`` but were not picked up, runs whose
lease expired (their worker died) and notifications whose retry is due are sent to the
broker again. Duplicate messages are harmless: a run must claim the job's lease first."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from ponder.config import Settings
from ponder.db import after_commit
from ponder.jobs import ending, routing
from ponder.models import Job, JobStatus, Notification, utcnow
from ponder.queue import send_delivery, send_run_job

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReconcileReport:
    requeued_jobs: int
    resent_notifications: int
    expired_jobs: int = 0


def reconcile(*, session: Session, settings: Settings, limit: int = 500) -> ReconcileReport:
    now = utcnow()
    expired = expire_past_deadline(session=session, settings=settings, limit=limit)
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
    health: dict[str, str | None] = {}
    for job in jobs:
        job.enqueued_at = now
        if job.status == JobStatus.queued.value:
            routing.route(session, job, settings, reason="reconcile", health=health)
        session.add(job)
        for queue in routing.queues_to_resend(job, settings):
            after_commit(
                session, functools.partial(send_run_job, job.id, job.priority, queue=queue)
            )
    fallen = fall_back(session=session, settings=settings, health=health, limit=limit)
    grace = now - timedelta(seconds=60)
    notes = session.exec(
        select(Notification)
        # A literal, not a parameter: the partial index ix_notifications_due (status =
        # 'pending') then serves every plan, a prepared one too.
        .where(
            col(Notification.status) == sa.literal_column("'pending'"),
            col(Notification.next_attempt_at) < grace,
        )
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    for note in notes:
        note.next_attempt_at = now
        session.add(note)
        after_commit(session, functools.partial(send_delivery, note.id))
    if jobs or notes:
        logger.info("reconciler re-sent %d jobs and %d notifications", len(jobs), len(notes))
    return ReconcileReport(len(jobs) + fallen, len(notes), expired)


def fall_back(
    *, session: Session, settings: Settings, health: dict[str, str | None], limit: int = 500
) -> int:
    """Move the queued jobs of an unhealthy model to their task's fallback now, rather than
    when they are next re-sent (ponder/jobs/routing.py)."""
    models = [name for name in settings.registry.names() if len(settings.registry.entries) > 1]
    unhealthy = [m for m in models if health.setdefault(m, routing.unhealthy(session, m, settings))]
    if not unhealthy:
        return 0
    used = Job.config["model_used"].astext
    requested = Job.config["model_requested"].astext
    jobs = session.exec(
        select(Job)
        .where(
            col(Job.status) == JobStatus.queued.value,
            used.in_(unhealthy),
            used == requested,
            Job.config["fallback_model"].astext.is_not(None),
        )
        .order_by(col(Job.priority), col(Job.created_at))
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    moved = 0
    for job in jobs:
        before = routing.used_model(job, settings)
        queue = routing.route(session, job, settings, reason="reconcile", health=health)
        if routing.used_model(job, settings) != before:
            session.add(job)
            after_commit(
                session, functools.partial(send_run_job, job.id, job.priority, queue=queue)
            )
            moved += 1
    if moved:
        logger.warning("reconciler moved %d queued jobs to their fallback model", moved)
    return moved


def expire_past_deadline(*, session: Session, settings: Settings, limit: int = 500) -> int:
    """End ``expired`` the queued jobs whose ``complete_by`` passed, each with its
    notifications (and its batch's report when it was the last item): a job stuck behind a
    long queue ends at its deadline, not when a worker reaches its message. Their messages
    still in the broker find them ended at claim."""
    jobs = session.exec(
        select(Job)
        # A literal, so the partial index ix_jobs_queued_complete_by serves a prepared plan.
        .where(
            col(Job.status) == sa.literal_column("'queued'"),
            col(Job.complete_by).is_not(None),
            col(Job.complete_by) <= sa.func.now(),
        )
        .order_by(col(Job.complete_by))
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    for job in jobs:
        ending.expire(session, job, settings=settings)
    if jobs:
        logger.info("reconciler expired %d queued jobs past their deadline", len(jobs))
    return len(jobs)
