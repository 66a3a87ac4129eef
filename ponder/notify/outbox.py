"""The notification outbox: rows written in the transaction that ends a job (or a batch),
delivered at least once with a stable ``webhook-id``, every attempt recorded."""

from __future__ import annotations

import functools
import json
import logging
import random
import time
import zlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from ponder.config import Settings
from ponder.db import after_commit
from ponder.models import (
    Batch,
    DeliveryAttempt,
    Job,
    Notification,
    Tenant,
    WebhookEndpoint,
    new_id,
    utcnow,
)
from ponder.notify import email, endpoints, webhooks
from ponder.notify.payloads import job_payload
from ponder.queue import send_delivery

logger = logging.getLogger(__name__)

LONGEST_COUNTDOWN_S = 600.0
"""Longer waits are left to the reconciler: a Redis broker redelivers messages whose countdown
outlives its visibility timeout, and a worker holds counted-down messages in memory."""
DUE_SLACK_S = 1.0
ENDPOINT_BUSY_DELAY_S = 2.0
"""How long a delivery to a receiver that has its maximum in flight waits (with jitter)
before it looks for a free slot again."""


def enqueue_job_notifications(*, session: Session, job: Job, settings: Settings) -> None:
    """Write the outbox rows for a job that just ended; deliveries start after commit."""
    if job.webhook_url:
        _write(
            session,
            settings,
            job.tenant_id,
            "webhook",
            job.webhook_url,
            job_payload(job, settings),
            job_id=job.id,
        )
    if job.webhook_endpoint_id:
        endpoint = session.get(WebhookEndpoint, job.webhook_endpoint_id)
        assert endpoint is not None  # a foreign key
        payload = job_payload(job, settings, include_content=endpoint.include_content)
        _write_for_endpoint(session, settings, endpoint, payload, job_id=job.id)
    if job.email:
        _write(
            session,
            settings,
            job.tenant_id,
            "email",
            job.email,
            job_payload(job, settings),
            job_id=job.id,
        )


def enqueue_batch_report(
    *, session: Session, batch: Batch, payload: dict[str, Any], settings: Settings
) -> None:
    if batch.webhook_url:
        _write(
            session,
            settings,
            batch.tenant_id,
            "webhook",
            batch.webhook_url,
            payload,
            batch_id=batch.id,
        )
    if batch.webhook_endpoint_id:
        endpoint = session.get(WebhookEndpoint, batch.webhook_endpoint_id)
        assert endpoint is not None
        _write_for_endpoint(session, settings, endpoint, payload, batch_id=batch.id)
    if batch.email:
        _write(session, settings, batch.tenant_id, "email", batch.email, payload, batch_id=batch.id)


def _write_for_endpoint(
    session: Session,
    settings: Settings,
    endpoint: WebhookEndpoint,
    payload: dict[str, Any],
    *,
    job_id: str | None = None,
    batch_id: str | None = None,
) -> None:
    row = _write(
        session,
        settings,
        endpoint.tenant_id,
        "webhook",
        endpoint.url,
        payload,
        job_id=job_id,
        batch_id=batch_id,
        endpoint_id=endpoint.id,
    )
    if reason := endpoints.unavailable_reason(endpoint):
        # Recorded, so that the deliveries list says why nothing was sent.
        row.status, row.last_error, row.next_attempt_at = "disabled", reason, None


def _write(
    session: Session,
    settings: Settings,
    tenant_id: str,
    channel: str,
    target: str,
    payload: dict[str, Any],
    *,
    job_id: str | None = None,
    batch_id: str | None = None,
    endpoint_id: str | None = None,
) -> Notification:
    row = Notification(
        tenant_id=tenant_id,
        channel=channel,
        target=target,
        event_type=payload["type"],
        message_id="msg_" + new_id().replace("-", ""),
        payload=payload,
        max_attempts=settings.notify.max_delivery_attempts,
        next_attempt_at=utcnow(),
        job_id=job_id,
        batch_id=batch_id,
        endpoint_id=endpoint_id,
    )
    session.add(row)
    after_commit(session, functools.partial(_send_if_pending, row))
    return row


def _send_if_pending(row: Notification) -> None:
    if row.status == "pending":
        send_delivery(row.id)


@dataclass(frozen=True)
class DeliveryResult:
    status: str
    retry_in_s: float | None = None
    """Set when the task should count down to the next attempt itself."""


def deliver(*, session: Session, notification_id: str, settings: Settings) -> DeliveryResult:
    """One delivery attempt. The row is locked so two workers never send it at once."""
    row = session.exec(
        select(Notification)
        .where(Notification.id == notification_id)
        .with_for_update(skip_locked=True)
    ).first()
    if row is None or row.status != "pending":
        return DeliveryResult(row.status if row else "missing")
    if row.next_attempt_at and row.next_attempt_at > utcnow() + timedelta(seconds=DUE_SLACK_S):
        return DeliveryResult("not_due")  # a duplicate message; the due one follows
    endpoint = session.get(WebhookEndpoint, row.endpoint_id) if row.endpoint_id else None
    if endpoint is not None and (reason := endpoints.unavailable_reason(endpoint)):
        row.status, row.last_error, row.next_attempt_at = "disabled", reason, None
        return DeliveryResult("disabled")
    if row.channel == "webhook" and not _take_endpoint_slot(session, row, endpoint, settings):
        # Not an attempt: nothing was sent. The receiver is busy with our other deliveries.
        wait_s = ENDPOINT_BUSY_DELAY_S * random.uniform(0.5, 1.5)
        row.next_attempt_at = utcnow() + timedelta(seconds=wait_s)
        logger.info("notification %s deferred: its receiver has deliveries in flight", row.id)
        return DeliveryResult("deferred", retry_in_s=wait_s)
    row.attempts += 1
    started = time.monotonic()
    status_code: int | None = None
    error: str | None = None
    retry_after: float | None = None
    gone = False
    if row.channel == "webhook":
        outcome = _post_webhook(session, row, endpoint, settings)
        status_code, error, retry_after = outcome.status_code, outcome.error, outcome.retry_after_s
        delivered, gone = outcome.delivered, outcome.gone
    else:
        delivered = _send_email(row, settings)
        if not delivered:
            error = "smtp delivery failed"
    session.add(
        DeliveryAttempt(
            notification_id=row.id,
            attempt=row.attempts,
            status_code=status_code,
            error=error,
            duration_ms=int((time.monotonic() - started) * 1000),
        )
    )
    if delivered:
        row.status, row.delivered_at, row.next_attempt_at = "delivered", utcnow(), None
        return DeliveryResult("delivered")
    row.last_error = error or f"HTTP {status_code}"
    if gone:
        row.status, row.next_attempt_at = "disabled", None
        if endpoint is not None:
            endpoints.disable(endpoint, "the receiver answered 410 Gone")
            logger.warning("webhook endpoint %s disabled: 410 Gone", endpoint.id)
        return DeliveryResult("disabled")
    notify = settings.notify
    delay = webhooks.retry_delay(
        row.attempts, schedule=notify.webhook_retry_schedule_s, jitter=notify.webhook_retry_jitter
    )
    if delay is None or row.attempts >= row.max_attempts:
        row.status, row.next_attempt_at = "failed", None
        logger.warning("notification %s failed after %d attempts", row.id, row.attempts)
        return DeliveryResult("failed")
    if retry_after is not None:
        delay = max(delay, min(retry_after, notify.webhook_retry_after_max_s))
    row.next_attempt_at = utcnow() + timedelta(seconds=delay)
    return DeliveryResult("pending", retry_in_s=delay if delay <= LONGEST_COUNTDOWN_S else None)


def _take_endpoint_slot(
    session: Session, row: Notification, endpoint: WebhookEndpoint | None, settings: Settings
) -> bool:
    """Take one of the receiver's ``webhook_max_in_flight_per_endpoint`` slots for the rest of
    this transaction, or return False when every slot is taken.

    A slot is a PostgreSQL transaction-level advisory lock on (receiver, slot number). The
    delivery's transaction already spans the HTTP request (it holds the outbox row's lock), so
    the slot is held exactly as long as the attempt and is released by the commit, by the
    rollback, or by the server when a worker dies with its connection: nothing to expire or
    leak, unlike a counter in Redis with a TTL that must outlive the slowest attempt yet
    recover from a crash. Two receivers whose keys hash alike share slots, which only makes
    the limit stricter for both."""
    url = endpoint.url if endpoint is not None else row.target
    receiver = zlib.crc32(webhooks.endpoint_key(url).encode()) - 2**31  # PostgreSQL's int4
    for slot in range(settings.notify.webhook_max_in_flight_per_endpoint):
        taken = session.execute(
            sa.text("select pg_try_advisory_xact_lock(cast(:receiver as int), cast(:slot as int))"),
            {"receiver": receiver, "slot": slot},
        ).scalar_one()
        if taken:
            return True
    return False


def _post_webhook(
    session: Session, row: Notification, endpoint: WebhookEndpoint | None, settings: Settings
) -> webhooks.DeliveryOutcome:
    if endpoint is not None:
        secrets, url = endpoints.signing_secrets(endpoint), endpoint.url
    else:
        tenant = session.get(Tenant, row.tenant_id)
        assert tenant is not None
        secrets, url = [tenant.webhook_secret], row.target
    body = json.dumps(row.payload, separators=(",", ":")).encode()
    headers = webhooks.signed_headers(secrets, row.message_id, int(time.time()), body)
    return webhooks.deliver(
        url,
        body,
        headers,
        timeout_s=settings.notify.webhook_timeout_s,
        deadline_s=settings.notify.webhook_attempt_deadline_s,
        allow_hosts=settings.notify.webhook_allow_hosts,
    )


def _send_email(row: Notification, settings: Settings) -> bool:
    if row.event_type.startswith("batch."):
        subject, text, html = email.render_batch_email(row.payload["data"])
    else:
        subject, text, html = email.render_job_email(email.job_context(row.payload["data"]))
    try:
        email.send_email(settings.notify, to=row.target, subject=subject, text=text, html=html)
    except Exception as exc:  # noqa: BLE001 - recorded and retried
        logger.warning("email for notification %s failed: %s", row.id, type(exc).__name__)
        return False
    return True
