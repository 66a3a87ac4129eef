"""A job's or batch's content lifecycle: delete it now (``DELETE``), or put it under a legal
hold that exempts it from the retention purge and from deletion. Admin scope (api/scopes.py).

``DELETE`` answers 200 with the tombstone, the same on every call: deleting twice is not an
error. A held job or batch is not deleted: 409 naming the hold."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from api.deps import PrincipalDep, SessionDep, SettingsDep, TenantDep
from api.schemas import ErrorPublic
from ponder.models import Batch, Job
from ponder.ops import retention

router = APIRouter(tags=["retention"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorPublic} for code in (401, 403, 404, 409)
}


class TombstonePublic(BaseModel):
    """What is left of a deleted job or batch: who deleted it and when; its content is gone."""

    id: str
    kind: str
    """``job`` or ``batch``."""
    status: str | None
    """A job's final status (a running job was cancelled first); None for a batch."""
    deleted_at: datetime
    deleted_by: str | None
    """The id of the API key that deleted it."""
    purged_at: datetime | None


class LegalHoldPublic(BaseModel):
    id: str
    kind: str
    legal_hold: bool
    legal_hold_at: datetime | None
    legal_hold_by: str | None
    """The id of the API key that placed the hold."""


def _tombstone(row: Job | Batch) -> TombstonePublic:
    assert row.deleted_at is not None
    return TombstonePublic(
        id=row.id,
        kind="job" if isinstance(row, Job) else "batch",
        status=row.status if isinstance(row, Job) else None,
        deleted_at=row.deleted_at,
        deleted_by=row.deleted_by,
        purged_at=row.purged_at,
    )


def _hold(row: Job | Batch) -> LegalHoldPublic:
    return LegalHoldPublic(
        id=row.id,
        kind="job" if isinstance(row, Job) else "batch",
        legal_hold=row.legal_hold_at is not None,
        legal_hold_at=row.legal_hold_at,
        legal_hold_by=row.legal_hold_by,
    )


@router.delete("/v1/jobs/{job_id}", response_model=TombstonePublic, responses=_ERRORS)
def delete_job(
    job_id: str,
    session: SessionDep,
    principal: PrincipalDep,
    tenant: TenantDep,
    settings: SettingsDep,
) -> TombstonePublic:
    """Purge the job's content now (a queued or running job is cancelled first) and keep a
    tombstone. Idempotent: a second call answers the same tombstone."""
    job = retention.delete_job(
        session=session, tenant=tenant, job_id=job_id, key_id=principal.key_id, settings=settings
    )
    return _tombstone(job)


@router.delete("/v1/batches/{batch_id}", response_model=TombstonePublic, responses=_ERRORS)
def delete_batch(
    batch_id: str,
    session: SessionDep,
    principal: PrincipalDep,
    tenant: TenantDep,
    settings: SettingsDep,
) -> TombstonePublic:
    """Cancel the batch if it runs, then purge it and all its items. Idempotent."""
    batch = retention.delete_batch(
        session=session,
        tenant=tenant,
        batch_id=batch_id,
        key_id=principal.key_id,
        settings=settings,
    )
    return _tombstone(batch)


@router.post("/v1/jobs/{job_id}/legal-hold", response_model=LegalHoldPublic, responses=_ERRORS)
def hold_job(
    job_id: str, session: SessionDep, principal: PrincipalDep, tenant: TenantDep
) -> LegalHoldPublic:
    """Exempt the job from the retention purge and from deletion until the hold is released."""
    job = retention.set_job_hold(
        session=session, tenant=tenant, job_id=job_id, key_id=principal.key_id, held=True
    )
    return _hold(job)


@router.delete("/v1/jobs/{job_id}/legal-hold", response_model=LegalHoldPublic, responses=_ERRORS)
def release_job(
    job_id: str, session: SessionDep, principal: PrincipalDep, tenant: TenantDep
) -> LegalHoldPublic:
    job = retention.set_job_hold(
        session=session, tenant=tenant, job_id=job_id, key_id=principal.key_id, held=False
    )
    return _hold(job)


@router.post("/v1/batches/{batch_id}/legal-hold", response_model=LegalHoldPublic, responses=_ERRORS)
def hold_batch(
    batch_id: str, session: SessionDep, principal: PrincipalDep, tenant: TenantDep
) -> LegalHoldPublic:
    """A hold on a batch covers every item of it."""
    batch = retention.set_batch_hold(
        session=session, tenant=tenant, batch_id=batch_id, key_id=principal.key_id, held=True
    )
    return _hold(batch)


@router.delete(
    "/v1/batches/{batch_id}/legal-hold", response_model=LegalHoldPublic, responses=_ERRORS
)
def release_batch(
    batch_id: str, session: SessionDep, principal: PrincipalDep, tenant: TenantDep
) -> LegalHoldPublic:
    batch = retention.set_batch_hold(
        session=session, tenant=tenant, batch_id=batch_id, key_id=principal.key_id, held=False
    )
    return _hold(batch)
