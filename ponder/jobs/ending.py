"""How a job ends, whoever ends it (its run, a cancel, the poison rule, a deadline): the
terminal status, cost, QA sampling, lease cleared, and in the same transaction its
notifications and its batch's report."""

from __future__ import annotations

import logging

from sqlmodel import Session

from ponder.batches.state import close_batch_if_ended
from ponder.config import Settings
from ponder.jobs import state as job_state
from ponder.jobs.events import announce
from ponder.jobs.knobs import knobs_store
from ponder.models import Job, JobStatus, utcnow
from ponder.notify.outbox import enqueue_job_notifications
from ponder.reviews.sampling import is_sampled

logger = logging.getLogger(__name__)


def end(
    session: Session, job: Job, status: JobStatus, *, error: str | None, settings: Settings
) -> None:
    job_state.move(job, status)
    _ended(session, job, error=error, settings=settings)


def expire(session: Session, job: Job, *, settings: Settings) -> None:
    """End a queued job (or one whose run died) whose ``complete_by`` passed before a run
    started it: ``expired``, notified like any other ending."""
    assert job.complete_by is not None
    job_state.expire(job)
    _ended(
        session,
        job,
        error=f"not started before its deadline (complete_by {job.complete_by.isoformat()})",
        settings=settings,
    )


def _ended(session: Session, job: Job, *, error: str | None, settings: Settings) -> None:
    job.error = error
    job.finished_at = utcnow()
    if job.status == JobStatus.succeeded.value:
        # Decided once, as it ends: the QA sample a person reviews to measure precision.
        rate = knobs_store(settings.knobs_file).current().for_task(job.task).qa_sample_rate
        job.qa_sampled = is_sampled(job.id, rate)
    job.cost = _cost(job, settings)
    job.lease_owner = None
    job.lease_expires_at = None
    session.add(job)
    _notify_and_close_batch(session, job, settings)
    announce(session, job.id)  # its live streams send `end` on commit, not at their next poll
    logger.info("job %s ended %s", job.id, job.status)


def _cost(job: Job, settings: Settings) -> float | None:
    """Each model's usage on the job at that model's prices (an escalation runs a job on
    several); usage no model is recorded for (charged before migration 0013) and a model no
    longer in the registry are priced as the model it ran on last. None: no prices set."""
    registry = settings.registry
    last = registry.get(job.config.get("model_used"))
    usage = job.usage_by_model or {}
    parts = [
        (registry.entries.get(model, last), u.get("prompt_tokens", 0),
         u.get("completion_tokens", 0), u.get("engine_wall_s", 0.0))
        for model, u in usage.items()
    ]  # fmt: skip
    parts.append((
        last,
        job.prompt_tokens - sum(p[1] for p in parts),
        job.completion_tokens - sum(p[2] for p in parts),
        max(0.0, job.engine_wall_s - sum(p[3] for p in parts)),
    ))  # fmt: skip
    costs = [
        entry.prices.cost(prompt=prompt, completion=completion, engine_s=engine_s)
        for entry, prompt, completion, engine_s in parts
    ]
    priced = [c for c in costs if c is not None]
    return sum(priced) if priced else None


def _notify_and_close_batch(session: Session, job: Job, settings: Settings) -> None:
    """In the transaction that ends the job: its notifications, and its batch's report when it
    was the batch's last item."""
    session.flush()
    enqueue_job_notifications(session=session, job=job, settings=settings)
    if job.batch_id is not None:
        close_batch_if_ended(session=session, batch_id=job.batch_id, settings=settings)
