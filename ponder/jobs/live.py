"""Live progress for the event streams (api/routes/events.py): a job's trace events and a
batch's counts as PostgreSQL has them now, and the one LISTEN connection per event loop that
wakes a job's streams when its trace grows (``ponder.jobs.events.announce``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy.engine import make_url
from sqlmodel import Session, col, select

from ponder.batches.service import summarize
from ponder.config import get_settings
from ponder.db import session_scope
from ponder.jobs.contract import TraceStep
from ponder.jobs.events import TRACE_CHANNEL
from ponder.models import Batch, Job, JobStatus, TraceEvent
from ponder.scoping import readable_batches, readable_jobs

logger = logging.getLogger(__name__)

RECONNECT_S = 2.0
"""How long the listener waits before reconnecting; streams keep polling meanwhile."""


@dataclass(frozen=True)
class JobProgress:
    status: str
    steps: list[TraceStep]
    """The trace events after the one the caller last saw, in order."""

    @property
    def ended(self) -> bool:
        return JobStatus(self.status).terminal


def read_job_progress(*, tenant_id: str, job_id: str, after: int) -> JobProgress | None:
    """The job's status and its trace events numbered above ``after``; None when the tenant
    has no such job. The status is read first: events written before the job ended are then
    all in the second read (each statement sees what was committed when it started)."""
    with session_scope() as session:
        status = (
            session.execute(
                readable_jobs(tenant_id)
                .where(col(Job.id) == job_id)
                .with_only_columns(col(Job.status))
            )
            .scalars()
            .first()
        )
        if status is None:
            return None
        rows = session.exec(
            select(TraceEvent)
            .where(col(TraceEvent.job_id) == job_id, col(TraceEvent.seq) > after)
            .order_by(col(TraceEvent.seq))
        ).all()
        steps = [
            TraceStep(seq=e.seq, attempt=e.attempt, kind=e.kind, data=e.data, at=e.created_at)
            for e in rows
        ]
    return JobProgress(status=str(status), steps=steps)


@dataclass(frozen=True)
class BatchProgress:
    event_id: int
    """Grows with every move of an item (see ``progress_id``): a stream resumes after it."""
    status: str
    round: int
    counts: dict[str, int]
    ended: bool

    def public(self, batch_id: str) -> dict[str, Any]:
        return {
            "batch_id": batch_id,
            "status": self.status,
            "round": self.round,
            "total": sum(self.counts.values()),
            "counts": self.counts,
            "ended": self.ended,
        }


def progress_id(*, round: int, counts: dict[str, int]) -> int:
    """Each item counts 0 while queued, 1 while running and 2 once ended, so the sum grows with
    every move within a round; a retry (a new round) puts failed items back in the queue, so
    each round starts above the highest sum the last one could reach."""
    total = sum(counts.values())
    pending = counts[JobStatus.queued.value] + counts[JobStatus.running.value]
    moves = counts[JobStatus.running.value] + 2 * (total - pending)
    return (round - 1) * (2 * total + 1) + moves


def read_batch_progress(*, tenant_id: str, batch_id: str) -> BatchProgress | None:
    """The batch's counts now; None when the tenant has no such batch."""
    with session_scope() as session:
        batch = session.exec(readable_batches(tenant_id).where(col(Batch.id) == batch_id)).first()
        if batch is None:
            return None
        return _batch_progress(session, batch)


def _batch_progress(session: Session, batch: Batch) -> BatchProgress:
    summary = summarize(session, batch)
    return BatchProgress(
        event_id=progress_id(round=batch.round, counts=summary.counts),
        status=summary.status,
        round=batch.round,
        counts=summary.counts,
        ended=summary.ended,
    )


class _TraceListener:
    """One connection that LISTENs on the trace channel for every open stream of its event
    loop; a notification sets the events of the streams that follow its job."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._waiting: dict[str, set[asyncio.Event]] = {}
        self._task: asyncio.Task[None] | None = None

    def add(self, job_id: str) -> asyncio.Event:
        woken = asyncio.Event()
        self._waiting.setdefault(job_id, set()).add(woken)
        if self._task is None:
            self._task = asyncio.create_task(self._listen(), name="ponder-trace-listener")
        return woken

    def remove(self, job_id: str, woken: asyncio.Event) -> bool:
        """Forget a stream; True (and the connection closed) when it was the last one."""
        streams = self._waiting.get(job_id, set())
        streams.discard(woken)
        if not streams:
            self._waiting.pop(job_id, None)
        if self._waiting:
            return False
        if self._task is not None:
            self._task.cancel()  # not awaited: the stream calling this may itself be cancelled
            self._task = None
        return True

    def _wake(self, job_id: str) -> None:
        for woken in self._waiting.get(job_id, ()):
            woken.set()

    async def _listen(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._dsn, autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {TRACE_CHANNEL}")
                    for job_id in list(self._waiting):  # what was written while not listening
                        self._wake(job_id)
                    async for note in conn.notifies():
                        self._wake(note.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the streams poll meanwhile; the class only (no DSN)
                logger.warning(
                    "trace listener lost its connection (%s); reconnecting in %.0fs",
                    type(exc).__name__,
                    RECONNECT_S,
                )
                await asyncio.sleep(RECONNECT_S)


_listeners: dict[asyncio.AbstractEventLoop, _TraceListener] = {}


def _listen_dsn() -> str:
    """The database URL for psycopg itself (without SQLAlchemy's driver suffix)."""
    url = make_url(get_settings().database.url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


@asynccontextmanager
async def trace_wakeups(job_id: str) -> AsyncIterator[asyncio.Event]:
    """An event set each time the job's trace grows. Subscribe before reading the table, and
    clear the event before each read, so that no write between a read and the wait is missed;
    a stream still reads on a timer, for what the channel does not carry (the job's end)."""
    loop = asyncio.get_running_loop()
    listener = _listeners.get(loop)
    if listener is None:
        listener = _listeners[loop] = _TraceListener(_listen_dsn())
    woken = listener.add(job_id)
    try:
        yield woken
    finally:
        if listener.remove(job_id, woken):
            _listeners.pop(loop, None)
