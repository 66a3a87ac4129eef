"""Appending to a job's trace events: the one place that numbers them (each job's ``seq`` one
past its last), used by the run's recorder and by the claim, releases and the cache."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col

from ponder.models import Job, TraceEvent

TRACE_CHANNEL = "ponder_trace"
"""The PostgreSQL NOTIFY channel told each job id whose trace grew (ids only, never content),
on commit: the live streams (ponder/jobs/live.py) wake on it instead of polling."""


def append_event(
    session: Session, *, job_id: str, attempt: int, kind: str, data: dict[str, Any]
) -> None:
    """Add the job's next trace event. The caller holds the job's row lock or its lease, which
    orders the event against the job's other writers."""
    seq = session.execute(
        sa.select(sa.func.coalesce(sa.func.max(TraceEvent.seq), 0) + 1).where(
            col(TraceEvent.job_id) == job_id
        )
    ).scalar_one()
    session.add(TraceEvent(job_id=job_id, seq=seq, attempt=attempt, kind=kind, data=data))
    session.flush()
    announce(session, job_id)


def announce(session: Session, job_id: str) -> None:
    """Wake the job's live streams when this transaction commits (dropped on rollback; sent
    once per job however many times a transaction calls it)."""
    session.execute(sa.select(sa.func.pg_notify(TRACE_CHANNEL, job_id)))


def append_job_event(session: Session, job: Job, kind: str, data: dict[str, Any]) -> None:
    """A trace event written outside a run (a claim, a release, a cache hit), numbered with the
    job's current attempt."""
    append_event(session, job_id=job.id, attempt=job.attempts, kind=kind, data=data)
