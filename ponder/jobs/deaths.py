"""Deaths attributed before convicting: a run that died with its worker is charged to its job
only when no other job was in flight on that worker; a job that keeps dying in crowds is run
alone, in quarantine, where a death can only be its own (docs/reliability.md, scenario 2)."""

from __future__ import annotations

import logging
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col

from ponder.config import Settings
from ponder.jobs.events import append_job_event
from ponder.models import Job, JobStatus

logger = logging.getLogger(__name__)


def worker_of(owner: str | None) -> str:
    """The worker process of a lease owner ``host:pid:boot:thread`` (worker/tasks.py): all
    but the thread. The boot id tells a restarted container apart from its predecessor even
    when both ran as the same pid on the same host."""
    return (owner or "unknown").rsplit(":", 1)[0]


def record_death(session: Session, job: Job, settings: Settings, now: datetime) -> None:
    """The claim found ``job`` running under an expired lease: its run died with its worker.

    The crowd is the other jobs that were in flight on the same worker: those still running
    under its leases (not yet claimed again), and those whose last death was on it (claimed
    again already; a job's ``died_on`` is only overwritten if it dies again elsewhere, well
    after its crowd-mates were claimed). A job that ended or was released before the worker
    died holds no lease there and is not counted. The caller holds the job's row lock."""
    worker = worker_of(job.lease_owner)
    prefix = f"{worker}:"
    crowd = session.execute(
        sa.select(col(Job.id), col(Job.tenant_id)).where(
            col(Job.id) != job.id,
            sa.or_(
                sa.and_(
                    col(Job.status) == JobStatus.running.value,
                    col(Job.lease_owner).startswith(prefix, autoescape=True),
                ),
                col(Job.died_on) == worker,
            ),
        )
    ).all()
    if crowd:
        job.crowd_deaths += 1
    else:
        job.lone_deaths += 1
    job.died_on = worker
    # Another tenant's job ids stay out of this tenant's trace: only their count is shown
    # there; the log names them all for the operator.
    same_tenant = sorted(j for j, tenant in crowd if tenant == job.tenant_id)
    append_job_event(session, job, "worker_lost", {
        "worker": worker,
        "attempt": job.attempts,
        "counted_as": "crowd" if crowd else "alone",
        "in_flight_with": same_tenant,
        "in_flight_other_tenants": len(crowd) - len(same_tenant),
        "crowd_deaths": job.crowd_deaths,
        "lone_deaths": job.lone_deaths,
    })  # fmt: skip
    logger.warning(
        "job %s: attempt %d died with worker %s, %d other job(s) in flight there: %s",
        job.id,
        job.attempts,
        worker,
        len(crowd),
        ",".join(sorted(j for j, _ in crowd)) or "none",
    )
    threshold = settings.worker.crowd_deaths_before_quarantine
    if threshold and job.quarantined_at is None and job.crowd_deaths >= threshold:
        job.quarantined_at = now
        append_job_event(session, job, "quarantined", {"crowd_deaths": job.crowd_deaths})
        logger.warning(
            "job %s quarantined after %d deaths in a crowd: it runs alone from now on",
            job.id,
            job.crowd_deaths,
        )


def exhausted_reason(job: Job, settings: Settings) -> str | None:
    """Why the job must not run again, or None. Charged runs are the runs less the deaths in
    a crowd (graceful preemptions were never counted); the ceiling counts every run."""
    w = settings.worker
    if job.attempts >= w.max_runs:
        return (
            f"gave up after {job.attempts} attempts (the ceiling worker.max_runs): the worker "
            f"was lost during {job.crowd_deaths} runs with other jobs in flight and "
            f"{job.lone_deaths} alone"
        )
    if job.attempts - job.crowd_deaths < w.max_attempts:
        return None
    where = (
        "in quarantine, one job at a time"
        if job.quarantined_at is not None
        else "with no other job in flight"
    )
    reason = f"gave up after {job.attempts} attempts: the worker was lost during "
    reason += f"{job.lone_deaths} runs {where}"
    if job.crowd_deaths:
        reason += f" ({job.crowd_deaths} more deaths among other jobs were not counted)"
    return reason
