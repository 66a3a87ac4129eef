"""Escalation across models: a run whose strategy needs another model's pool (an adaptive
rung naming it) gives its job back and sends it there; that pool's run replays the recorded
steps and continues. Like a preemption's release, not a failure: the attempt is not counted
and nothing generated so far is lost. No commits here but the one ``hand_off`` runs."""

from __future__ import annotations

import functools
import logging

from sqlalchemy.orm.attributes import flag_modified
from sqlmodel import Session, col, select

from ponder.config import Settings
from ponder.db import after_commit, session_scope, with_retries
from ponder.jobs import lease, routing
from ponder.jobs import state as job_state
from ponder.jobs.deaths import worker_of
from ponder.jobs.events import append_job_event
from ponder.models import Job, JobStatus, TraceEvent, utcnow
from ponder.ops import rollups
from ponder.queue import send_to_model
from ponder.strategies.context import HandOffRecord, ModelHandOff

logger = logging.getLogger(__name__)

EVENT = "handoff"


def recorded(job_id: str) -> tuple[HandOffRecord, ...]:
    """The hand-offs earlier runs of the job made, oldest first: a rung another model already
    ran is replayed from the trace, not handed off again (``StrategyContext.needs_hand_off``)."""

    def read(retrying: bool) -> tuple[HandOffRecord, ...]:
        with session_scope() as session:
            rows = session.exec(
                select(TraceEvent.data)
                .where(TraceEvent.job_id == job_id, TraceEvent.kind == EVENT)
                .order_by(col(TraceEvent.seq))
            ).all()
        return tuple(HandOffRecord(d["from"], d["to"], int(d["rung"])) for d in rows)

    return with_retries(read, what=f"job {job_id}: read hand-offs")


def hand_off(
    *, job_id: str, token: int, owner: str, handoff: ModelHandOff, settings: Settings
) -> bool:
    """Give the job back and send it to ``handoff.to_model``'s pool, if this run still holds
    its lease (False if it did not: the run that does decides)."""

    def work(retrying: bool) -> bool:
        with session_scope() as session:
            job = lease.locked_for_run(session, job_id, token)
            if job is None:
                return False
            _release_to(session, job, handoff, worker_of(owner), settings)
            return True

    return with_retries(work, what=f"job {job_id}: hand-off")


def _release_to(
    session: Session, job: Job, handoff: ModelHandOff, worker: str, settings: Settings
) -> None:
    source = routing.used_model(job, settings)
    target = settings.registry.get(handoff.to_model)
    append_job_event(session, job, EVENT, {
        "from": source, "to": target.name, "confidence": handoff.confidence,
        "rung": handoff.rung, "strategy": handoff.strategy, "worker": worker,
    })  # fmt: skip
    job.config = {
        **job.config,
        **routing.model_fields(
            target,
            requested=str(job.config.get("model_requested") or source),
            fallback=job.config.get("fallback_model"),
        ),
        # The requested model's pool must not take it back (routing.take_over).
        "escalated_to": target.name,
    }
    flag_modified(job, "config")
    rollups.add(session.connection(), "handoffs", (source, target.name), 1)
    job_state.move(job, JobStatus.queued)
    job.attempts -= 1  # a hand-off is not a failed attempt (ponder/jobs/deaths.py counts them)
    job.lease_owner = None
    job.lease_expires_at = None
    job.enqueued_at = utcnow()
    session.add(job)
    after_commit(session, functools.partial(send_to_model, job.id, job.priority, target.name))
    logger.info("job %s handed off from model %s to %s at rung %d (confidence %.3f)",
                job.id, source, target.name, handoff.rung, handoff.confidence)  # fmt: skip
