"""Celery tasks: thin wrappers that take an id and call a service."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading

from celery import Task

from ponder.batches.nightly import run_nightly
from ponder.batches.service import dispatch
from ponder.config import get_settings
from ponder.db import get_engine as database_engine
from ponder.db import session_scope
from ponder.jobs import lease, routing
from ponder.jobs.reconcile import reconcile
from ponder.jobs.runner import run_job
from ponder.models import Job
from ponder.notify.outbox import deliver
from ponder.ops.alerts import check_alerts, raise_alerts
from ponder.ops.retention import purge_all_expired
from ponder.queue import (
    CHECK_ALERTS,
    DELIVER,
    DISPATCH_BATCH,
    NIGHTLY_RUN,
    PURGE_EXPIRED,
    RECONCILE,
    RUN_JOB,
    RUN_QUARANTINED,
    send_quarantined,
    send_run_job,
)
from worker.app import app
from worker.engine import get_engine

logger = logging.getLogger(__name__)


_BOOT = secrets.token_hex(3)
"""Tells this process from a predecessor with the same host and pid (a restarted container)."""


def _owner() -> str:
    """The lease owner ``host:pid:boot:thread``; all but the thread names the worker process,
    whose other runs are the crowd of a death (ponder/jobs/deaths.py)."""
    return f"{socket.gethostname()}:{os.getpid()}:{_BOOT}:{threading.get_ident()}"


@app.task(name=RUN_JOB, bind=True, max_retries=None)
def run_job_task(self: Task, job_id: str) -> str:
    settings = get_settings()
    if (elsewhere := _other_pool(job_id)) is not None:
        send_run_job(job_id, elsewhere[1], queue=elsewhere[0])
        return "forwarded"
    turn = _fair_turn(job_id)
    run_id = job_id if turn is None else turn.job_id
    outcome = run_job(job_id=run_id, engine=get_engine(settings), settings=settings, owner=_owner())
    if outcome.status == "quarantine":
        send_quarantined(run_id)  # it runs only alone now
        return outcome.status
    if outcome.retry_in_s is None:
        return outcome.status
    # Attempts are bounded in PostgreSQL, not here. A retried job goes to its fallback while
    # its model is unhealthy (ponder/jobs/routing.py).
    queue = _retry_queue(run_id) if outcome.status == "retry" else None
    if turn is None:
        raise self.retry(countdown=outcome.retry_in_s, **({"queue": queue} if queue else {}))
    if outcome.status != "busy":  # busy: another run holds the job; its own message remains
        # A fair turn is a job of this worker's model (lease.fairer_job).
        mine = settings.registry.queue(settings.worker_model.name)
        send_run_job(turn.job_id, turn.priority, queue=queue or mine, countdown=outcome.retry_in_s)
    return outcome.status


def _other_pool(job_id: str) -> tuple[str, int] | None:
    """The queue of the pool that should run this message's job, when it is not this worker's
    (a stale message, a fallback); None to run it here. Best effort, as ``_fair_turn``."""
    try:
        with session_scope() as session:
            return routing.take_over(session, job_id, get_settings())
    except Exception:
        logger.warning("job %s: model check failed; running it here", job_id)
        return None


def _retry_queue(job_id: str) -> str | None:
    try:
        with session_scope() as session:
            job = session.get(Job, job_id, with_for_update=True)
            if job is None:
                return None
            return routing.route(session, job, get_settings(), reason="retry")
    except Exception:
        logger.warning("job %s: routing its retry failed; it retries on the same model", job_id)
        return None


@app.task(name=RUN_QUARANTINED, bind=True, max_retries=None)
def run_quarantined_task(self: Task, job_id: str) -> str:
    """The quarantine queue's: served by a worker that runs one job at a time
    (``-Q quarantine -c 1``), so a death there is the job's own. No fair-share swap: only
    quarantined jobs run here."""
    settings = get_settings()
    outcome = run_job(
        job_id=job_id,
        engine=get_engine(settings),
        settings=settings,
        owner=_owner(),
        isolated=True,
    )
    if outcome.retry_in_s is None:
        return outcome.status
    raise self.retry(countdown=outcome.retry_in_s)


def _fair_turn(job_id: str) -> lease.FairTurn | None:
    """Fairness is best effort: if PostgreSQL cannot answer, the message's own job is run and
    its claim deals with the outage as before."""
    try:
        with session_scope() as session:
            return lease.fairer_job(session=session, job_id=job_id)
    except Exception:
        logger.warning("job %s: fair-share check failed; running it in turn", job_id)
        return None


@app.task(name=DELIVER, bind=True, max_retries=None)
def deliver_notification_task(self: Task, notification_id: str) -> str:
    settings = get_settings()
    with session_scope() as session:
        result = deliver(session=session, notification_id=notification_id, settings=settings)
    if result.retry_in_s is not None:
        raise self.retry(countdown=result.retry_in_s)
    return result.status


@app.task(name=CHECK_ALERTS)
def check_alerts_task() -> list[str]:
    settings = get_settings()
    with database_engine().connect() as conn:
        alerts = check_alerts(conn, settings)
    raise_alerts(alerts, settings)
    return [a.kind for a in alerts]


@app.task(name=RECONCILE)
def reconcile_task() -> dict[str, int]:
    with session_scope() as session:
        report = reconcile(session=session, settings=get_settings())
    return {"jobs": report.requeued_jobs, "notifications": report.resent_notifications}


@app.task(name=DISPATCH_BATCH)
def dispatch_batch_task(batch_id: str) -> int:
    with session_scope() as session:
        return dispatch(session=session, batch_id=batch_id)


@app.task(name=NIGHTLY_RUN)
def nightly_run_task(name: str) -> dict[str, object]:
    """What beat runs for ``nightly[].name``; a test or an operator can send the same."""
    report = run_nightly(name=name, settings=get_settings())
    return {
        "batch_id": report.batch_id,
        "submitted": len(report.submitted),
        "rejected": len(report.rejected),
        "duplicates": len(report.duplicates),
    }


@app.task(name=PURGE_EXPIRED)
def purge_expired_task() -> dict[str, int]:
    """Beat, every ``retention.purge_every_s``: blank the content whose retention ran out."""
    report = purge_all_expired(settings=get_settings())
    return {"purged": report.purged, "transactions": report.transactions}
