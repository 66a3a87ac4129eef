"""The notification outbox: rows written with the job's terminal state, delivered at least
once with a stable ``webhook-id``, every attempt recorded."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlmodel import Session, select

from ponder.config import Settings
from ponder.db import after_commit
from ponder.models import DeliveryAttempt, Job, Notification, Tenant, new_id, utcnow
from ponder.notify import email, webhooks
from ponder.queue import send_delivery

logger = logging.getLogger(__name__)


def job_payload(job: Job, settings: Settings) -> dict[str, Any]:
    """What a notification says of a job: ids, status, a summary and links; no content."""
    base = settings.notify.public_base_url.rstrip("/")
    result = job.result or {}
    return {
        "type": f"job.{job.status}",
        "timestamp": utcnow().isoformat(),
        "data": {
            "job_id": job.id,
            "status": job.status,
            "task": job.task,
            "strategy": job.config.get("strategy", {}).get("name"),
            "summary": result.get("summary") or job.error or "",
            "failing_checks": [
                {"verifier": f["verifier"], "finding_count": len(f.get("findings", []))}
                for f in result.get("failing_checks", [])
            ],
            "tokens": {"prompt": job.prompt_tokens, "completion": job.completion_tokens},
            "metadata": job.metadata_ or {},
            "links": {"job": f"{base}/v1/jobs/{job.id}", "trace": f"{base}/v1/jobs/{job.id}/trace"},
        },
    }


def enqueue_job_notifications(*, session: Session, job: Job, settings: Settings) -> None:
    """Write the outbox rows for a job that just ended; deliveries start after commit."""
    payload = job_payload(job, settings)
    targets = [("webhook", job.webhook_url), ("email", job.email)]
    for channel, target in targets:
        if not target:
            continue
        row = Notification(
            job_id=job.id,
            tenant_id=job.tenant_id,
            channel=channel,
            target=target,
            event_type=payload["type"],
            message_id="msg_" + new_id().replace("-", ""),
            payload=payload,
            next_attempt_at=utcnow(),
        )
        session.add(row)
        after_commit(session, _send_later(row.id))


def _send_later(notification_id: str) -> Callable[[], None]:
    return lambda: send_delivery(notification_id)


@dataclass(frozen=True)
class DeliveryResult:
    status: str
    retry_in_s: float | None = None


def deliver(*, session: Session, notification_id: str, settings: Settings) -> DeliveryResult:
    """One delivery attempt. The row is locked so two workers never send it at once."""
    row = session.exec(
        select(Notification)
        .where(Notification.id == notification_id)
        .with_for_update(skip_locked=True)
    ).first()
    if row is None or row.status != "pending":
        return DeliveryResult(row.status if row else "missing")
    row.attempts += 1
    started = time.monotonic()
    status_code: int | None = None
    error: str | None = None
    retry_after: float | None = None
    if row.channel == "webhook":
        tenant = session.get(Tenant, row.tenant_id)
        assert tenant is not None
        body = json.dumps(row.payload, separators=(",", ":")).encode()
        headers = webhooks.signed_headers(
            tenant.webhook_secret, row.message_id, int(time.time()), body
        )
        outcome = webhooks.deliver(
            row.target,
            body,
            headers,
            timeout_s=settings.notify.webhook_timeout_s,
            allow_hosts=settings.notify.webhook_allow_hosts,
        )
        status_code, error, retry_after = outcome.status_code, outcome.error, outcome.retry_after_s
        delivered, gone = outcome.delivered, outcome.gone
    else:
        delivered, gone = _send_email(row, settings), False
        if not delivered:
            error = "smtp delivery failed"
    duration_ms = int((time.monotonic() - started) * 1000)
    session.add(
        DeliveryAttempt(
            notification_id=row.id,
            attempt=row.attempts,
            status_code=status_code,
            error=error,
            duration_ms=duration_ms,
        )
    )
    if delivered:
        row.status, row.delivered_at, row.next_attempt_at = "delivered", utcnow(), None
        return DeliveryResult("delivered")
    row.last_error = error or f"HTTP {status_code}"
    if gone:
        row.status, row.next_attempt_at = "disabled", None
        return DeliveryResult("disabled")
    if row.attempts >= settings.notify.webhook_max_attempts:
        row.status, row.next_attempt_at = "failed", None
        logger.warning("notification %s failed after %d attempts", row.id, row.attempts)
        return DeliveryResult("failed")
    backoff = webhooks.backoff_delay(row.attempts, base_s=settings.notify.webhook_backoff_base_s)
    # Honour Retry-After, but never wait less than our own schedule or more than six hours.
    delay = min(6 * 3600.0, max(retry_after or 0.0, backoff))
    row.next_attempt_at = utcnow() + timedelta(seconds=delay)
    return DeliveryResult("pending", retry_in_s=delay)


def _send_email(row: Notification, settings: Settings) -> bool:
    data = row.payload["data"]
    subject, text, html = email.render_job_email(
        {
            "job_id": data["job_id"],
            "status": data["status"],
            "task": data["task"],
            "summary": data["summary"],
            "link": data["links"]["job"],
            "failing_checks": data["failing_checks"],
            "tokens": data["tokens"]["prompt"] + data["tokens"]["completion"],
            "cost": None,
        }
    )
    try:
        email.send_email(settings.notify, to=row.target, subject=subject, text=text, html=html)
    except Exception as exc:  # noqa: BLE001 - recorded and retried
        logger.warning("email for notification %s failed: %s", row.id, type(exc).__name__)
        return False
    return True
