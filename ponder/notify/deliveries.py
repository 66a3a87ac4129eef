"""Reading a job's or a batch's deliveries with every attempt, and replaying one by hand."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from sqlmodel import Session, col, select

from ponder.db import after_commit
from ponder.errors import NotFound
from ponder.models import DeliveryAttempt, Notification, Tenant, WebhookEndpoint, utcnow
from ponder.notify import endpoints
from ponder.queue import send_delivery
from ponder.scoping import readable_notifications


@dataclass(frozen=True)
class Delivery:
    notification: Notification
    attempts: list[DeliveryAttempt]


def list_deliveries(
    *, session: Session, tenant: Tenant, job_id: str | None = None, batch_id: str | None = None
) -> list[Delivery]:
    """The caller checked that the job or batch is the tenant's."""
    query = readable_notifications(tenant.id)
    if job_id is not None:
        query = query.where(Notification.job_id == job_id)
    if batch_id is not None:
        query = query.where(Notification.batch_id == batch_id)
    rows = list(session.exec(query.order_by(col(Notification.created_at))).all())
    return _with_attempts(session, rows)


def _with_attempts(session: Session, rows: list[Notification]) -> list[Delivery]:
    attempts: dict[str, list[DeliveryAttempt]] = {row.id: [] for row in rows}
    if rows:
        found = session.exec(
            select(DeliveryAttempt)
            .where(col(DeliveryAttempt.notification_id).in_(list(attempts)))
            .order_by(col(DeliveryAttempt.attempt))
        ).all()
        for attempt in found:
            attempts[attempt.notification_id].append(attempt)
    return [Delivery(row, attempts[row.id]) for row in rows]


def redeliver(*, session: Session, tenant: Tenant, notification_id: str) -> Delivery:
    """An attempt now, with the same ``webhook-id`` (receivers deduplicate on it) and a fresh
    timestamp and signature. A delivery that had stopped (delivered, failed, disabled) gets
    exactly one more attempt; one still in its retry schedule keeps the rest of it."""
    row = session.exec(
        readable_notifications(tenant.id)
        .where(col(Notification.id) == notification_id)
        .with_for_update()
    ).first()
    if row is None:
        raise NotFound(f"no delivery {notification_id}")
    if row.endpoint_id is not None:
        endpoint = session.get(WebhookEndpoint, row.endpoint_id)
        assert endpoint is not None
        endpoints.ensure_enabled(endpoint)
    if row.status != "pending":
        row.status, row.max_attempts = "pending", row.attempts + 1
    row.next_attempt_at = utcnow()
    session.add(row)
    after_commit(session, functools.partial(send_delivery, row.id))
    session.flush()
    return _with_attempts(session, [row])[0]
