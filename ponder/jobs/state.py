"""A job's status has one writer: this module. The allowed transitions are one table, and a
transition outside it raises, so no code path can put a job in a state by accident."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import col

from ponder.models import Job, JobStatus

Q, R = JobStatus.queued, JobStatus.running
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    # Failed from queued: a job whose attempts were all used by runs that died is failed at
    # the claim that finds it so. Succeeded or reviewed from queued: a claim answers the job
    # from the result cache with its source's answer and status (ponder/jobs/cache.py).
    Q: frozenset(
        {R, JobStatus.cancelled, JobStatus.failed, JobStatus.succeeded, JobStatus.reviewed}
    ),
    # Running to running: a run whose lease expired is claimed again by another run. Running
    # to queued: a run gives the job back after a transient failure (engine unavailable).
    R: frozenset(
        {R, Q, JobStatus.succeeded, JobStatus.needs_review, JobStatus.failed, JobStatus.cancelled}
    ),  # fmt: skip
    # A person resolves a flagged job, or checks a QA-sampled succeeded one.
    JobStatus.succeeded: frozenset({JobStatus.reviewed}),
    JobStatus.needs_review: frozenset({JobStatus.reviewed}),
    # A batch's retry of its failed and expired items.
    JobStatus.failed: frozenset({Q}),
    JobStatus.expired: frozenset({Q}),
    JobStatus.cancelled: frozenset(),
    JobStatus.reviewed: frozenset(),
}
"""From each status, the statuses a job may move to."""

DEADLINE_ONLY: frozenset[tuple[JobStatus, JobStatus]] = frozenset(
    {(Q, JobStatus.expired), (R, JobStatus.expired)}
)
"""Reachable only through ``expire`` (a deadline that passed), never through ``move``."""


class ImpossibleTransition(RuntimeError):
    """A code path asked for a move the table does not allow: a bug, never a user error."""


def move(job: Job, to: JobStatus) -> None:
    """Set ``job``'s status to ``to`` if the table allows it from where it is; else raise."""
    current = JobStatus(job.status)
    if to not in TRANSITIONS[current]:
        raise ImpossibleTransition(f"job {job.id}: {current.value} -> {to.value} is not allowed")
    job.status = to.value


def expire(job: Job) -> None:
    """The one way to ``expired``: a deadline passed while the job was queued or running."""
    current = JobStatus(job.status)
    if (current, JobStatus.expired) not in DEADLINE_ONLY:
        raise ImpossibleTransition(f"job {job.id}: {current.value} cannot expire")
    job.status = JobStatus.expired.value


def sources(to: JobStatus) -> list[str]:
    """The statuses from which ``move`` allows ``to``."""
    return [s.value for s, targets in TRANSITIONS.items() if to in targets]


def bulk_move(*where: Any, to: JobStatus, **values: Any) -> sa.Update:
    """An UPDATE that moves every job matching ``where`` to ``to``, restricted to the rows
    whose status allows that move (rows in other states are left as they are)."""
    return (
        sa.update(Job)
        .where(col(Job.status).in_(sources(to)), *where)
        .values(status=to.value, **values)
    )
