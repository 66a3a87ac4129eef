"""Deliveries: every notification of a job or a batch with all its attempts, and a replay."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import SessionDep, TenantDep
from api.schemas import DeliveryAttemptPublic, DeliveryPublic, ErrorPublic
from ponder.batches import service as batches
from ponder.jobs import service as jobs
from ponder.models import DeliveryAttempt, Notification
from ponder.notify import deliveries

router = APIRouter(tags=["deliveries"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorPublic} for code in (401, 404, 409)
}


def to_public(row: Notification, attempts: list[DeliveryAttempt]) -> DeliveryPublic:
    return DeliveryPublic(
        id=row.id,
        webhook_id=row.message_id,
        channel=row.channel,
        target=row.target,
        event_type=row.event_type,
        status=row.status,
        job_id=row.job_id,
        batch_id=row.batch_id,
        endpoint_id=row.endpoint_id,
        max_attempts=row.max_attempts,
        next_attempt_at=row.next_attempt_at,
        delivered_at=row.delivered_at,
        last_error=row.last_error,
        created_at=row.created_at,
        attempts=[
            DeliveryAttemptPublic(
                attempt=a.attempt,
                status_code=a.status_code,
                error=a.error,
                duration_ms=a.duration_ms,
                created_at=a.created_at,
            )
            for a in attempts
        ],
    )


@router.get("/v1/jobs/{job_id}/deliveries", response_model=list[DeliveryPublic], responses=_ERRORS)
def job_deliveries(job_id: str, session: SessionDep, tenant: TenantDep) -> list[DeliveryPublic]:
    """The job's webhook and email notifications, each with every attempt and its status code."""
    job = jobs.get_job(session=session, tenant=tenant, job_id=job_id)
    found = deliveries.list_deliveries(session=session, tenant=tenant, job_id=job.id)
    return [to_public(d.notification, d.attempts) for d in found]


@router.get(
    "/v1/batches/{batch_id}/deliveries", response_model=list[DeliveryPublic], responses=_ERRORS
)
def batch_deliveries(batch_id: str, session: SessionDep, tenant: TenantDep) -> list[DeliveryPublic]:
    """The batch's reports (one per round), each with every attempt."""
    batch = batches.get_batch(session=session, tenant=tenant, batch_id=batch_id)
    found = deliveries.list_deliveries(session=session, tenant=tenant, batch_id=batch.id)
    return [to_public(d.notification, d.attempts) for d in found]


@router.post(
    "/v1/deliveries/{delivery_id}/redeliver", response_model=DeliveryPublic, responses=_ERRORS
)
def redeliver(delivery_id: str, session: SessionDep, tenant: TenantDep) -> DeliveryPublic:
    """Send it again now, with the same ``webhook-id``; the attempt is recorded like the others."""
    found = deliveries.redeliver(session=session, tenant=tenant, notification_id=delivery_id)
    return to_public(found.notification, found.attempts)
