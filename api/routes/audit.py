"""The tenant's access audit, newest first: ``GET /v1/audit``. Admin scope (api/scopes.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.deps import SessionDep, TenantDep
from api.schemas import ErrorPublic
from ponder import audit
from ponder.models import AuditEvent

router = APIRouter(prefix="/v1/audit", tags=["audit"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorPublic} for code in (401, 403, 422)
}


class AuditEventPublic(BaseModel):
    id: str
    action: str
    """``job.read``, ``job.trace``, ``job.list``, ``job.submit``, ``job.cancel``, ``job.delete``,
    ``job.hold``, ``batch.results``, ``key.create``, ``key.revoke``, ``audit.read``, ..."""
    key_id: str | None
    job_id: str | None
    batch_id: str | None
    target_id: str | None
    address: str | None
    created_at: datetime


class AuditPage(BaseModel):
    items: list[AuditEventPublic]
    next_cursor: str | None


def to_public(row: AuditEvent) -> AuditEventPublic:
    return AuditEventPublic(
        id=row.id,
        action=row.action,
        key_id=row.key_id,
        job_id=row.job_id,
        batch_id=row.batch_id,
        target_id=row.target_id,
        address=row.address,
        created_at=row.created_at,
    )


@router.get("", response_model=AuditPage, responses=_ERRORS)
def list_audit(
    session: SessionDep,
    tenant: TenantDep,
    job_id: Annotated[str | None, Query(max_length=36)] = None,
    batch_id: Annotated[str | None, Query(max_length=36)] = None,
    action: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> AuditPage:
    """Every recorded access of this tenant's keys; pass ``next_cursor`` back as ``cursor``."""
    rows, next_cursor = audit.list_events(
        session=session,
        tenant_id=tenant.id,
        job_id=job_id,
        batch_id=batch_id,
        action=action,
        limit=limit,
        cursor=cursor,
    )
    return AuditPage(items=[to_public(r) for r in rows], next_cursor=next_cursor)
