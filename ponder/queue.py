"""The Celery app's configuration and the senders the core uses (job ids only, never text).

The reliability settings of the design live here: late acks, requeue on worker loss,
prefetch 1, a visibility timeout above the longest job, priorities on Redis.
"""

from __future__ import annotations

import functools
from typing import Any

from celery import Celery
from kombu import Queue

from ponder.config import Settings, get_settings
from ponder.ops.cron import parse_cron

RUN_JOB = "ponder.run_job"
RUN_QUARANTINED = "ponder.run_quarantined"
DELIVER = "ponder.deliver_notification"
RECONCILE = "ponder.reconcile"
CHECK_ALERTS = "ponder.check_alerts"
DISPATCH_BATCH = "ponder.dispatch_batch"
NIGHTLY_RUN = "ponder.nightly_run"
PURGE_EXPIRED = "ponder.purge_expired"

REASONING_QUEUE = "reasoning"
"""The default model's queue; another model of the registry has ``reasoning.<name>``
(ponder/engines/registry.py), served by its own pool."""
QUARANTINE_QUEUE = "quarantine"
"""Jobs that died with their worker in crowds run here, one at a time (docs/reliability.md)."""
NOTIFY_QUEUE = "notify"
DEFAULT_QUEUE = "default"


def make_celery(settings: Settings) -> Celery:
    app = Celery("ponder", broker=settings.broker.url)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        task_ignore_result=True,
        task_queues=[
            Queue(REASONING_QUEUE),
            *(Queue(q) for q in settings.registry.queues() if q != REASONING_QUEUE),
            Queue(QUARANTINE_QUEUE),
            Queue(NOTIFY_QUEUE),
            Queue(DEFAULT_QUEUE),
        ],
        task_default_queue=DEFAULT_QUEUE,
        task_routes={
            RUN_JOB: {"queue": REASONING_QUEUE},
            RUN_QUARANTINED: {"queue": QUARANTINE_QUEUE},
            DELIVER: {"queue": NOTIFY_QUEUE},
            RECONCILE: {"queue": DEFAULT_QUEUE},
            CHECK_ALERTS: {"queue": DEFAULT_QUEUE},
            DISPATCH_BATCH: {"queue": DEFAULT_QUEUE},
            NIGHTLY_RUN: {"queue": DEFAULT_QUEUE},
            PURGE_EXPIRED: {"queue": DEFAULT_QUEUE},
        },
        broker_transport_options={
            "visibility_timeout": settings.broker.visibility_timeout_s,
            # A worker looks for unacked messages older than the visibility timeout only every
            # interval x throttle seconds (kombu: 10 x 10); scan at least every 10 s, and well
            # inside a short timeout (the fault suite's), so a lost message comes back soon.
            "unacked_restore_interval": max(1, min(10, settings.broker.visibility_timeout_s // 4)),
            "unacked_restore_throttle": 1,
            # Ten priority levels; 0 is served first (as vLLM's priority scheduling).
            "priority_steps": list(range(10)),
            "sep": ":",
            "queue_order_strategy": "priority",
        },
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
        # Threads, not processes: one engine per process, shared by many jobs in flight.
        worker_pool="threads",
        worker_concurrency=settings.worker.jobs_in_flight,
        timezone=settings.worker.timezone,
        beat_schedule={
            "reconcile": {"task": RECONCILE, "schedule": float(settings.worker.reconcile_every_s)},
            "alerts": {"task": CHECK_ALERTS, "schedule": float(settings.alerts.every_s)},
            "retention": {
                "task": PURGE_EXPIRED,
                "schedule": float(settings.retention.purge_every_s),
            },
            **nightly_schedule(settings),
        },
    )
    return app


def nightly_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """One beat entry per configured nightly run; the task gets the run's name only."""
    return {
        f"nightly:{run.name}": {
            "task": NIGHTLY_RUN,
            "schedule": parse_cron(run.cron),
            "args": [run.name],
        }
        for run in settings.nightly
    }


@functools.lru_cache(maxsize=1)
def celery_app() -> Celery:
    return make_celery(get_settings())


def send_run_job(
    job_id: str, priority: int, *, queue: str = REASONING_QUEUE, **options: Any
) -> None:
    """``queue``: the pool of the job's model (``ponder.jobs.routing.queue_of``)."""
    celery_app().send_task(RUN_JOB, args=[job_id], priority=priority, queue=queue, **options)


def send_to_model(job_id: str, priority: int, model: str, **options: Any) -> None:
    """Send the job to the pool of the named registry model (an escalation's hand-off); the
    caller has recorded the model on the job first."""
    send_run_job(job_id, priority, queue=get_settings().registry.queue(model), **options)


def send_quarantined(job_id: str) -> None:
    celery_app().send_task(RUN_QUARANTINED, args=[job_id])


def send_dispatch_batch(batch_id: str) -> None:
    celery_app().send_task(DISPATCH_BATCH, args=[batch_id])


def send_delivery(notification_id: str, countdown: float | None = None) -> None:
    celery_app().send_task(DELIVER, args=[notification_id], countdown=countdown)
