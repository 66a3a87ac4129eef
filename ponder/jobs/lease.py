"""A run's hold on its job: claim (counting a dead run's death first), a fair turn between
tenants, renewal, the locked row for each write, and the run's ending or release. No commits."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from ponder.config import Settings, get_settings
from ponder.db import after_commit
from ponder.jobs import cache, deaths, ending, routing
from ponder.jobs import state as job_state
from ponder.jobs.events import append_job_event
from ponder.models import Job, JobStatus, utcnow
from ponder.queue import send_run_job
from ponder.scoping import readable_jobs

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claim:
    outcome: str
    """``claimed``; ``ended`` (terminal, nothing to do, or just answered from the result
    cache); ``busy`` (another live run holds the lease, or runs an identical job: claim again
    after ``retry_in_s``); ``exhausted`` (runs charged to the job used up: it was failed);
    ``expired`` (its ``complete_by`` passed before a run started it: it was expired);
    ``quarantine`` (the job runs only alone: send it to the quarantine queue)."""
    token: int = 0
    attempt: int = 0
    retry_in_s: float = 0.0
    charged: int = 0
    """Runs charged to the job, this one included: attempts less deaths in a crowd."""
    quarantined: bool = False


def claim(
    *, session: Session, job_id: str, owner: str, settings: Settings, isolated: bool = False
) -> Claim:
    """Take the job's lease. The row is locked first, so a death found here (a run whose
    lease expired) is counted once; the lease is then taken by one conditional UPDATE, so two
    runs can never both hold it. ``isolated``: the caller runs one job at a time (the
    quarantine worker); a quarantined job is claimed by no other."""
    job = session.get(Job, job_id, with_for_update=True)
    if job is None or JobStatus(job.status).terminal:
        return Claim("ended")
    now = session.execute(sa.select(sa.func.now())).scalar_one()
    if job.lease_expires_at is not None and job.lease_expires_at > now:
        remaining = (job.lease_expires_at - now).total_seconds()
        return Claim("busy", retry_in_s=max(1.0, remaining + 1.0))
    if job.status == JobStatus.running.value:
        deaths.record_death(session, job, settings, now)
        # The dead run's lease is over: queued again, so the death is counted once whatever
        # this claim decides next.
        job_state.move(job, JobStatus.queued)
        job.lease_owner = None
        job.lease_expires_at = None
    if job.complete_by is not None and job.complete_by <= now:
        # Its result is no longer wanted: no run starts (or, after a death, resumes) it.
        ending.expire(session, job, settings=settings)
        return Claim("expired")
    reason = deaths.exhausted_reason(job, settings)
    if reason is not None:
        # A job whose runs kill their worker: fail it instead of looping.
        ending.end(session, job, JobStatus.failed, error=reason, settings=settings)
        return Claim("exhausted")
    answered = cache.at_claim(session, job, settings)
    if answered == "cached":
        return Claim("ended")
    if answered == "waiting":
        return Claim("busy", retry_in_s=cache.WAIT_FOR_TWIN_S)
    if job.quarantined_at is not None and not isolated:
        waited = (now - job.quarantined_at).total_seconds()
        if waited > settings.worker.quarantine_wait_alert_s:
            logger.error(
                "job %s has waited %.0fs in quarantine: is a worker serving the quarantine "
                "queue (celery -A worker.app worker -Q quarantine -c 1)?",
                job.id,
                waited,
            )
        job.enqueued_at = utcnow()  # sent on to the quarantine queue: not stale
        session.add(job)
        return Claim("quarantine", quarantined=True)
    quarantined = job.quarantined_at is not None
    session.add(job)
    session.flush()
    ttl = timedelta(seconds=settings.worker.lease_ttl_s)
    row = session.execute(
        # From queued, or from running whose lease expired (job_state.TRANSITIONS).
        job_state.bulk_move(
            col(Job.id) == job_id,
            sa.or_(col(Job.lease_expires_at).is_(None), col(Job.lease_expires_at) < sa.func.now()),
            to=JobStatus.running,
            attempts=Job.attempts + 1,
            lease_owner=owner,
            lease_token=Job.lease_token + 1,
            lease_expires_at=sa.func.now() + ttl,
            started_at=sa.func.coalesce(Job.started_at, sa.func.now()),
        ).returning(col(Job.lease_token), col(Job.attempts), col(Job.crowd_deaths))
    ).first()
    session.expire(job)
    if row is None:  # not reachable under the row lock; refuse rather than run twice
        return Claim("busy", retry_in_s=1.0)
    return Claim(
        "claimed",
        token=row[0],
        attempt=row[1],
        charged=row[1] - row[2],
        quarantined=quarantined,
    )


@dataclass(frozen=True)
class FairTurn:
    """A queued job to run in place of the message's job: of a tenant with fewer jobs running,
    or of the same tenant and priority with an earlier deadline."""

    job_id: str
    priority: int


def fairer_job(*, session: Session, job_id: str) -> FairTurn | None:
    """The job a worker should run for a message naming ``job_id``: None to run that job, or
    another queued job (``_fewer_running`` first, then ``_earlier_deadline``). The message's
    job is then sent to the broker again after commit, so every queued job keeps a message of
    its own. Claim, lease and fencing are untouched: the chosen job is claimed like any other,
    so a race for it costs a ``busy`` claim, never a second run.

    Only jobs never started (``attempts = 0``) are chosen: a job waiting for its retry backoff
    runs from its own (delayed) message."""
    settings = get_settings()
    mine = session.execute(
        sa.select(col(Job.tenant_id), col(Job.priority), col(Job.complete_by), _model_of).where(
            col(Job.id) == job_id, col(Job.status) == JobStatus.queued.value
        )
    ).first()
    if mine is None:
        return None  # running, ended or missing: the claim says what to do
    tenant_id, priority, complete_by, model = mine
    # Only a job of the same model: this worker's pool serves that model alone.
    model = model or settings.registry.default
    same_model = sa.func.coalesce(_model_of, settings.registry.default) == model
    turn = _fewer_running(session, job_id, tenant_id, same_model)
    why = "its tenant has fewer jobs running"
    if turn is None:
        turn = _earlier_deadline(session, job_id, tenant_id, priority, complete_by, same_model)
        why = "it has an earlier deadline"
    if turn is None:
        return None
    session.execute(sa.update(Job).where(col(Job.id) == job_id).values(enqueued_at=utcnow()))
    queue = settings.registry.queue(model) if model in settings.registry.entries else None
    after_commit(
        session,
        functools.partial(send_run_job, job_id, priority, **({"queue": queue} if queue else {})),
    )
    logger.info("job %s runs before job %s: %s", turn.job_id, job_id, why)
    return turn


_model_of = Job.config["model_used"].astext
"""The registry model a job runs on (null: frozen before the registry, the default's)."""
_ANY_MODEL = sa.true()


def _fewer_running(
    session: Session, job_id: str, tenant_id: str, same_model: Any = _ANY_MODEL
) -> FairTurn | None:
    """The first queued job of the tenant with the fewest jobs running, when that tenant has
    fewer running than ``job_id``'s (then by priority, then age).

    The broker serves messages in priority and arrival order, so without this a tenant that
    queued 50,000 items ahead of another tenant's job would run all of them first. Here a
    message is a turn at a worker slot and the turn goes to the tenant with the fewest jobs
    running: another tenant's job starts at the next claim after it is queued, whatever is in
    the broker ahead of it. With one tenant, or when the message's tenant runs no more than
    anyone waiting, nothing changes."""
    running: dict[str, int] = {
        tenant: count
        for tenant, count in session.execute(
            sa.select(col(Job.tenant_id), sa.func.count())
            .where(col(Job.status) == JobStatus.running.value)
            .group_by(col(Job.tenant_id))
        ).all()
    }
    own = running.get(tenant_id, 0)
    if own == 0:
        return None
    crowded = [tenant for tenant, count in running.items() if count >= own]  # own tenant too
    running_of_tenant = sa.case(running, value=col(Job.tenant_id), else_=0)
    fairer = session.execute(
        sa.select(col(Job.id), col(Job.priority))
        .where(
            col(Job.status) == JobStatus.queued.value,
            col(Job.attempts) == 0,
            col(Job.tenant_id).not_in(crowded),
            same_model,
        )
        .order_by(running_of_tenant, col(Job.priority), col(Job.complete_by), col(Job.created_at))
        .limit(1)
        .with_for_update(skip_locked=True)
    ).first()
    return None if fairer is None else FairTurn(job_id=fairer[0], priority=fairer[1])


def _earlier_deadline(
    session: Session,
    job_id: str,
    tenant_id: str,
    priority: int,
    complete_by: Any,
    same_model: Any = _ANY_MODEL,
) -> FairTurn | None:
    """The queued job of the same tenant and priority with the earliest deadline, when it is
    earlier than ``job_id``'s (or ``job_id`` has none).

    The broker orders messages by priority steps and then by arrival, and knows nothing of
    deadlines; so within a priority the deadline is honoured here, at the claim: a message is
    a turn at a worker slot, and the turn goes to the most urgent job. Same tenant only, so it
    never undoes ``_fewer_running``'s choice of whose turn it is."""
    query = (
        readable_jobs(tenant_id)
        .with_only_columns(col(Job.id), col(Job.priority))
        .where(
            # A literal, so the partial index ix_jobs_queued_complete_by serves a prepared plan.
            col(Job.status) == sa.literal_column("'queued'"),
            col(Job.complete_by).is_not(None),
            col(Job.priority) == priority,
            col(Job.attempts) == 0,
            col(Job.id) != job_id,
            same_model,
        )
    )
    if complete_by is not None:
        query = query.where(col(Job.complete_by) < complete_by)
    earlier = session.execute(
        query.order_by(col(Job.complete_by)).limit(1).with_for_update(skip_locked=True)
    ).first()
    return None if earlier is None else FairTurn(job_id=earlier[0], priority=earlier[1])


def renew_lease(*, session: Session, job_id: str, token: int, settings: Settings) -> bool | None:
    """Extend the lease if this run still holds it. Returns the cancel flag, or None if the
    lease was lost."""
    row = session.execute(
        sa.update(Job)
        .where(
            col(Job.id) == job_id,
            col(Job.lease_token) == token,
            col(Job.status) == JobStatus.running.value,
        )
        .values(lease_expires_at=sa.func.now() + timedelta(seconds=settings.worker.lease_ttl_s))
        .returning(col(Job.cancel_requested))
    ).first()
    return None if row is None else bool(row[0])


def locked_for_run(session: Session, job_id: str, token: int) -> Job | None:
    """The job row, locked, if this run still holds its lease."""
    job = session.exec(
        select(Job)
        .where(Job.id == job_id, Job.lease_token == token, Job.status == JobStatus.running.value)
        .with_for_update()
    ).first()
    return job


def finish(
    *,
    session: Session,
    job: Job,
    status: JobStatus,
    settings: Settings,
    result: dict[str, Any] | None = None,
    selected_candidate_id: str | None = None,
    error: str | None = None,
) -> None:
    """End a run that holds the lease (the caller locked the row with ``locked_for_run``)."""
    job.result = result
    job.selected_candidate_id = selected_candidate_id
    ending.end(session, job, status, error=error, settings=settings)


def release_for_retry(*, session: Session, job: Job, reason: str) -> None:
    """Give the job back to the queue after a transient failure (engine unavailable)."""
    job_state.move(job, JobStatus.queued)
    job.lease_owner = None
    job.lease_expires_at = None
    job.error = reason
    job.enqueued_at = utcnow()
    session.add(job)


def release_preempted(*, session: Session, job: Job, worker: str) -> None:
    """Give back the job of a run stopped by its worker's shutdown (SIGTERM): the lease is
    released at once rather than left to expire, the attempt is not counted (the job did
    nothing wrong), and the job is sent to the broker again after commit. Recorded steps
    stay and are reused by the next run."""
    job_state.move(job, JobStatus.queued)
    append_job_event(session, job, "preempted", {"worker": worker})
    job.attempts -= 1
    job.lease_owner = None
    job.lease_expires_at = None
    job.enqueued_at = utcnow()
    session.add(job)
    queue = routing.queue_of(job, get_settings())
    after_commit(session, functools.partial(send_run_job, job.id, job.priority, queue=queue))
    logger.info("job %s given back to the queue: its worker %s is shutting down", job.id, worker)
