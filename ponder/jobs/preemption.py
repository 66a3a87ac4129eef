"""Graceful preemption: on SIGTERM (a spot reclaim, a node drain, a deploy) a worker stops
claiming, stops its runs at their next safe point and gives their jobs back to the queue at
once, attempts not counted, within ``worker.shutdown_grace_s`` (docs/deploy.md)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlmodel import Session

from ponder.config import Settings
from ponder.db import session_scope
from ponder.engines.base import Engine
from ponder.jobs import lease
from ponder.jobs.deaths import worker_of
from ponder.jobs.trace import PostgresRecorder

T = TypeVar("T")
logger = logging.getLogger(__name__)

_requested = threading.Event()
_lock = threading.Lock()
_runs: dict[str, tuple[int, str, Engine]] = {}
"""Runs in flight in this process: job id -> (fencing token, lease owner, engine)."""


class Preempted(Exception):
    """This worker is shutting down: the run stops and gives its job back."""


def requested() -> bool:
    return _requested.is_set()


@contextmanager
def in_flight(job_id: str, token: int, owner: str, engine: Engine) -> Iterator[None]:
    """Register a run so that a shutdown can abort its engine calls and release its lease."""
    with _lock:
        _runs[job_id] = (token, owner, engine)
    try:
        yield
    finally:
        with _lock:
            if _runs.get(job_id, (None,))[0] == token:
                del _runs[job_id]


class PreemptibleRecorder(PostgresRecorder):
    """A recorder whose every write is a safe point: once a shutdown is requested the write
    still lands (what was generated and verified is kept), then the run stops."""

    def _write(self, what: str, work: Callable[[Session, bool], T]) -> T:
        result = super()._write(what, work)
        if _requested.is_set():
            raise Preempted(self.job_id)
        return result


def begin(settings: Settings) -> None:
    """Start the shutdown (Celery's ``worker_shutting_down``, in the signal handler: only a
    flag and a thread here)."""
    if _requested.is_set():
        return
    _requested.set()
    threading.Thread(target=_shut_down, args=(settings,), daemon=True, name="preemption").start()


def _shut_down(settings: Settings) -> None:
    """Abort the engine calls of the runs in flight (again every half second, for calls that
    started since); the runs stop at their next write and release themselves. At half the
    grace period, release whatever is still running from here (a CPU-bound step, an engine
    that cannot abort an HTTP call): the fencing token keeps those runs from writing later."""
    with _lock:
        logger.warning("shutdown requested: %d run(s) in flight are given back", len(_runs))
    deadline = time.monotonic() + settings.worker.shutdown_grace_s / 2
    while time.monotonic() < deadline:
        with _lock:
            runs = dict(_runs)
        if not runs:
            return
        for job_id, (_, _, engine) in runs.items():
            engine.abort_job(job_id)
        time.sleep(0.5)
    with _lock:
        runs = dict(_runs)
    for job_id, (token, owner, _) in runs.items():
        try:
            release(job_id, token, owner)
        except Exception:  # PostgreSQL unreachable: the lease expires as after a kill
            logger.warning("job %s: could not release its lease at shutdown", job_id)


def release(job_id: str, token: int, owner: str) -> bool:
    """Give the job back if this run still holds its lease; False if it did not."""
    with session_scope() as session:
        job = lease.locked_for_run(session, job_id, token)
        if job is None:
            return False
        lease.release_preempted(session=session, job=job, worker=worker_of(owner))
        return True


def reset_for_tests() -> None:
    _requested.clear()
    with _lock:
        _runs.clear()
