"""Which model's pool runs a job: the model it asked for (or its task's default), or its
task's fallback while the asked-for model is unhealthy. Health is read from PostgreSQL, the
truth, when a job is routed (submit, reconciler, retry): the oldest job queued for the model,
and whether its last runs all met an engine error. No commits here."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm.attributes import flag_modified
from sqlmodel import Session, col

from ponder.config import Settings
from ponder.engines.registry import ModelEntry
from ponder.jobs.events import append_job_event
from ponder.models import Job, JobStatus, utcnow

logger = logging.getLogger(__name__)


def model_fields(entry: ModelEntry, *, requested: str, fallback: str | None) -> dict[str, Any]:
    """The frozen configuration's model keys. ``model`` and ``engine`` say what answers (the
    cache key reads them); ``model_requested`` / ``model_used`` are registry names."""
    return {
        "model": entry.model,
        "engine": entry.kind,
        "model_requested": requested,
        "model_used": entry.name,
        "fallback_model": fallback,
    }


def queues_to_resend(job: Job, settings: Settings) -> list[str]:
    """Where the reconciler sends a job again: its model's queue, and for a job moved to its
    fallback, its requested model's too, so whichever pool comes back first runs it."""
    queues = [queue_of(job, settings)]
    requested = job.config.get("model_requested")
    # An escalation handed it to another model on purpose (ponder/jobs/handoff.py): that pool.
    escalated = job.config.get("escalated_to") is not None
    if requested and requested in settings.registry.entries and not escalated:
        queues.append(settings.registry.queue(requested))
    return sorted(set(queues))


def used_model(job: Job, settings: Settings) -> str:
    """The registry name of the model the job runs on; a job frozen before the registry
    runs on the default."""
    return str(job.config.get("model_used") or settings.registry.default)


def queue_of(job: Job, settings: Settings) -> str:
    return settings.registry.queue(used_model(job, settings))


def unhealthy(session: Session, model: str, settings: Settings) -> str | None:
    """Why the model's pool cannot be counted on now, or None. Jobs already moved to another
    model are not counted for it."""
    used = Job.config["model_used"].astext
    oldest = session.execute(
        sa.select(sa.func.min(col(Job.created_at))).where(
            col(Job.status) == JobStatus.queued.value, col(Job.attempts) == 0, used == model
        )
    ).scalar_one()
    age = settings.fallback.queue_age_s
    if oldest is not None and oldest < utcnow() - timedelta(seconds=age):
        return f"its oldest queued job has waited over {age:.0f}s"
    k = settings.fallback.engine_errors
    errors = session.execute(
        sa.select(col(Job.error))
        .where(used == model, col(Job.started_at).is_not(None))
        .order_by(col(Job.started_at).desc())
        .limit(k)
    ).all()
    # "engine unavailable" (ponder/jobs/runner.py): the engine's fault; "engine refused" is
    # the request's (a prompt past the context), not a sign of the model's health.
    if len(errors) == k and all((e or "").startswith("engine unavailable") for (e,) in errors):
        return f"its last {k} runs found the engine unavailable"
    return None


def route(
    session: Session,
    job: Job,
    settings: Settings,
    *,
    reason: str,
    health: dict[str, str | None] | None = None,
) -> str:
    """Move the job to its fallback when the model it asked for is unhealthy and the fallback
    is not; returns the queue to send it to. A job already on its fallback stays there (its
    requested pool may take it back: ``take_over``). ``health``: models already judged in
    this transaction (the reconciler routes many jobs)."""
    requested = str(job.config.get("model_requested") or used_model(job, settings))
    fallback = job.config.get("fallback_model")
    known = {} if health is None else health

    def judged(model: str) -> str | None:
        if model not in known:
            known[model] = unhealthy(session, model, settings)
        return known[model]

    if (
        fallback
        and used_model(job, settings) == requested
        # An escalation named its model (ponder/jobs/handoff.py): a fallback would hand it back.
        and job.config.get("escalated_to") is None
        and (why := judged(requested)) is not None
        and judged(fallback) is None
    ):
        _use(job, settings.registry.get(fallback))
        append_job_event(
            session, job, "fallback", {"from": requested, "to": fallback, "why": why, "at": reason}
        )
        logger.warning("job %s: model %s unhealthy (%s); runs on %s", job.id, requested, why,
                       fallback)  # fmt: skip
    return queue_of(job, settings)


def take_over(session: Session, job_id: str, settings: Settings) -> tuple[str, int] | None:
    """Called by a reasoning worker before it runs a message's job: None to run it here, or
    the queue (and priority) of the pool that should (a stale message, or one a fallback
    moved). The pool of the model a job asked for always runs it, taking it back from its
    fallback."""
    if len(settings.registry.entries) == 1:
        return None
    mine = settings.worker_model.name
    job = session.get(Job, job_id, with_for_update=True)
    if job is None or JobStatus(job.status).terminal or used_model(job, settings) == mine:
        return None
    if (
        job.config.get("model_requested") == mine
        and job.status == JobStatus.queued.value
        and job.config.get("escalated_to") is None  # handed off on purpose: not taken back
    ):
        _use(job, settings.worker_model)
        append_job_event(session, job, "model_returned", {"to": mine})
        return None
    return queue_of(job, settings), job.priority


def _use(job: Job, entry: ModelEntry) -> None:
    job.config = {
        **job.config,
        **model_fields(
            entry,
            requested=str(job.config.get("model_requested") or entry.name),
            fallback=job.config.get("fallback_model"),
        ),
    }
    flag_modified(job, "config")
    job.enqueued_at = utcnow()
