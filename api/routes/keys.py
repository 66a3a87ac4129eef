"""The tenant's API keys: list, create (shown once), revoke. Admin scope (api/scopes.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.deps import SessionDep, TenantDep, forget_key
from api.schemas import ErrorPublic
from api.scopes import ActorDep
from ponder import audit, tenants
from ponder.models import ApiKey, Scope

router = APIRouter(prefix="/v1/keys", tags=["keys"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorPublic} for code in (401, 403, 404, 422)
}


class KeyCreate(BaseModel):
    scopes: list[Scope] = Field(min_length=1)
    """``submit``, ``read``, ``admin``: at least one."""
    expires_in_days: float | None = Field(default=None, gt=0, le=3650)
    """None: the key does not expire."""


class KeyPublic(BaseModel):
    id: str
    prefix: str
    """The first characters of the key, to tell keys apart; the key itself is never shown
    again after it was created."""
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class KeyCreatedPublic(KeyPublic):
    key: str
    """Shown this once: store it now."""


def to_public(row: ApiKey) -> KeyPublic:
    return KeyPublic(
        id=row.id,
        prefix=row.prefix,
        scopes=list(row.scopes),
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


@router.get("", response_model=list[KeyPublic], responses=_ERRORS)
def list_keys(session: SessionDep, tenant: TenantDep) -> list[KeyPublic]:
    return [to_public(k) for k in tenants.list_keys(session=session, tenant_id=tenant.id)]


@router.post("", status_code=201, response_model=KeyCreatedPublic, responses=_ERRORS)
def create_key(
    body: KeyCreate, session: SessionDep, tenant: TenantDep, actor: ActorDep
) -> KeyCreatedPublic:
    """A new key of this tenant with the scopes asked for; the key is in this answer only."""
    issued = tenants.create_key(
        session=session,
        tenant=tenant,
        scopes=[s.value for s in body.scopes],
        expires_in_days=body.expires_in_days,
    )
    audit.record(session, actor, "key.create", target_id=issued.row.id)
    return KeyCreatedPublic(**to_public(issued.row).model_dump(), key=issued.key)


@router.delete("/{key_id}", response_model=KeyPublic, responses=_ERRORS)
def revoke_key(key_id: str, session: SessionDep, tenant: TenantDep) -> KeyPublic:
    """Revoke the key: refused (401) from now on. Revoking twice answers the same."""
    row = tenants.revoke_key(session=session, key_id=key_id, tenant_id=tenant.id)
    forget_key(row.id)
    return to_public(row)
